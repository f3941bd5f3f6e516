import CImageSupport
import Foundation

/// The IDX format of MNIST-style data sets (gzipped or raw): magic 0x0000 08 NN (unsigned bytes,
/// NN dimensions), NN big-endian UInt32 sizes, then the bytes.
public enum IDX {
    /// Reads an IDX file of unsigned bytes, inflating it first when it is gzipped.
    public static func read(_ url: URL) throws -> (dimensions: [Int], bytes: [UInt8]) {
        let raw: Data
        do { raw = try Data(contentsOf: url) } catch {
            throw DatasetError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
        return try decode(raw, name: url.path)
    }

    /// Parses an IDX file's contents, inflating them first when they are gzipped; `name` names
    /// the file in errors.
    public static func decode(_ data: Data, name: String) throws -> (dimensions: [Int], bytes: [UInt8]) {
        var bytes = [UInt8](data)
        if bytes.starts(with: [0x1F, 0x8B]) { bytes = try gunzip(bytes, name: name) }
        return try parse(bytes, name: name)
    }

    static func gunzip(_ bytes: [UInt8], name: String) throws -> [UInt8] {
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var err = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { b in
            cis_gunzip(b.baseAddress, b.count, 1 << 31, &out, &length, &err, err.count)
        }
        guard status == 0, let out else { throw DatasetError(file: name, String(cString: err)) }
        defer { cis_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: length))
    }

    public static func parse(_ bytes: [UInt8], name: String) throws -> (dimensions: [Int], bytes: [UInt8]) {
        guard bytes.count >= 4, bytes[0] == 0, bytes[1] == 0 else {
            throw DatasetError(file: name, "not an IDX file (bad magic number)")
        }
        guard bytes[2] == 0x08 else {
            throw DatasetError(file: name, String(format: "IDX element type 0x%02x is not supported (only unsigned bytes, 0x08)", bytes[2]))
        }
        let rank = Int(bytes[3])
        guard rank >= 1, rank <= 4, bytes.count >= 4 + 4 * rank else {
            throw DatasetError(file: name, "IDX header truncated or with \(rank) dimensions")
        }
        var dims: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            dims.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        // Four sizes below 2^32 can multiply past Int.max: the product is checked, not trapped on.
        let start = 4 + 4 * rank
        var total = 1, overflow = false
        for v in dims where !overflow { (total, overflow) = total.multipliedReportingOverflow(by: v) }
        guard !overflow, bytes.count - start == total else {
            let need = overflow ? "more than \(Int.max)" : "\(total)"
            throw DatasetError(file: name, "IDX dimensions \(dims) need \(need) bytes of data, file has \(bytes.count - start)")
        }
        return (dims, Array(bytes[start...]))
    }
}
