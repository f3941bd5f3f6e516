import Foundation
import TensorEngine
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The element types `Safetensors.write` can store Float32 tensors as.
public enum SafetensorsWriteDType: String, CaseIterable, Sendable {
    /// Exact.
    case f32 = "F32"
    /// IEEE half precision, rounded to nearest even (overflow gives infinity).
    case f16 = "F16"
    /// bfloat16, rounded to nearest even.
    case bf16 = "BF16"

    var storedType: SafetensorsDType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }
}

extension Safetensors {
    /// Writes tensors to a safetensors file, atomically: the bytes go to a temporary file in the
    /// same directory, which is flushed to disk and then renamed over `url`, so a crash leaves
    /// either the old file or the complete new one, never a partial file.
    ///
    /// Layout as the official writer makes it when every tensor has one dtype: the header is
    /// compact JSON, `__metadata__` first (left out when `metadata` is empty), then the tensors in
    /// name order (sorted by UTF-8 bytes), each as `{"dtype":…,"shape":[…],"data_offsets":[b,e]}`;
    /// metadata keys sorted too; the header is padded with spaces to a multiple of 8 bytes; the
    /// data follows contiguously in the same name order. For one dtype and at most one metadata
    /// key this is byte-for-byte the official writer's output (checked against safetensors 0.8.0);
    /// it differs only where the official writer has no fixed order (it emits metadata keys in
    /// hash-map order) or where tensors of several dtypes would be grouped by dtype (all tensors
    /// here share `dtype`). Symlinks at `url` are replaced, not followed; the file mode is 0644
    /// less the umask. Throws `invalidTensorName` for a tensor
    /// named `__metadata__`, `headerTooLarge` past 100,000,000 header bytes, `writeFailed` on I/O
    /// errors; the destination is then left as it was.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to url: URL,
                             dtype: SafetensorsWriteDType = .f32) throws {
        let path = url.path
        let (names, header) = try prepare(tensors, metadata: metadata, dtype: dtype, path: path)

        let directory = url.deletingLastPathComponent().path
        let temporary = (directory.isEmpty ? "." : directory) + "/." + url.lastPathComponent + ".tmp-" + UUID().uuidString
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw SafetensorsError.writeFailed(path: path, reason: "cannot create \(temporary): \(errorText())")
        }
        var closed = false
        do {
            let sink: (UnsafeRawBufferPointer) throws -> Void = { chunk in
                var done = 0
                while done < chunk.count {
                    guard let base = chunk.baseAddress else { return }
                    let result = posixWrite(fd, base + done, chunk.count - done)
                    if result < 0 {
                        if errno == EINTR { continue }
                        throw SafetensorsError.writeFailed(path: path, reason: errorText())
                    }
                    done += result
                }
            }
            try header.withUnsafeBytes { try sink($0) }
            try emitData(names: names, dtype: dtype, to: sink)
            guard fsync(fd) == 0 else { throw SafetensorsError.writeFailed(path: path, reason: "fsync: \(errorText())") }
            closed = true
            guard close(fd) == 0 else { throw SafetensorsError.writeFailed(path: path, reason: "close: \(errorText())") }
            guard rename(temporary, path) == 0 else {
                throw SafetensorsError.writeFailed(path: path, reason: "rename: \(errorText())")
            }
        } catch {
            if !closed { close(fd) }
            unlink(temporary)
            throw error
        }
    }

    /// The bytes `write` would put in a file (for in-memory use and tests).
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:],
                              dtype: SafetensorsWriteDType = .f32) throws -> Data {
        let (names, header) = try prepare(tensors, metadata: metadata, dtype: dtype, path: "(in memory)")
        let dataBytes = names.reduce(0) { $0 + ($1.1.count * dtype.storedType.bitSize / 8) }
        var out = Data(capacity: header.count + dataBytes)
        out.append(contentsOf: header)
        try emitData(names: names, dtype: dtype) { out.append(contentsOf: $0) }
        return out
    }

    /// Sorted (name, tensor) pairs and the full header: length prefix, JSON, padding.
    private static func prepare(_ tensors: [String: Tensor], metadata: [String: String],
                                dtype: SafetensorsWriteDType, path: String) throws -> ([(String, Tensor)], [UInt8]) {
        let pairs = Array(tensors)
        let names = utf8Order(pairs.map(\.key)).map { (pairs[$0].key, pairs[$0].value) }
        if tensors["__metadata__"] != nil {
            throw SafetensorsError.invalidTensorName(path: path, name: "__metadata__")
        }
        var json: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        func separator() {
            if !first { json.append(UInt8(ascii: ",")) }
            first = false
        }
        if !metadata.isEmpty {
            separator()
            appendJSONString("__metadata__", to: &json)
            json.append(contentsOf: ":{".utf8)
            let metadataPairs = Array(metadata)
            for (k, i) in utf8Order(metadataPairs.map(\.key)).enumerated() {
                if k > 0 { json.append(UInt8(ascii: ",")) }
                appendJSONString(metadataPairs[i].key, to: &json)
                json.append(UInt8(ascii: ":"))
                appendJSONString(metadataPairs[i].value, to: &json)
            }
            json.append(UInt8(ascii: "}"))
        }
        let elementBits = dtype.storedType.bitSize
        var offset = 0
        for (name, tensor) in names {
            separator()
            appendJSONString(name, to: &json)
            let end = offset + tensor.count * elementBits / 8
            json.append(contentsOf: ":{\"dtype\":\"\(dtype.rawValue)\",\"shape\":[".utf8)
            json.append(contentsOf: tensor.shape.map(String.init).joined(separator: ",").utf8)
            json.append(contentsOf: "],\"data_offsets\":[\(offset),\(end)]}".utf8)
            offset = end
        }
        json.append(UInt8(ascii: "}"))
        while json.count % 8 != 0 { json.append(UInt8(ascii: " ")) }
        guard json.count <= maximumHeaderLength else {
            throw SafetensorsError.headerTooLarge(path: path, headerLength: UInt64(json.count))
        }
        var header = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { header.replaceSubrange(0..<8, with: $0) }
        header.append(contentsOf: json)
        return (names, header)
    }

    /// JSON string as serde_json writes it: `"` and `\` escaped, control characters as short
    /// escapes or \u00XX, everything else (non-ASCII included) as raw UTF-8.
    private static func appendJSONString(_ s: String, to out: inout [UInt8]) {
        let hex = Array("0123456789abcdef".utf8)
        out.append(UInt8(ascii: "\""))
        for c in s.utf8 {
            switch c {
            case UInt8(ascii: "\""): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0A: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                out.append(contentsOf: Array("\\u00".utf8))
                out.append(hex[Int(c >> 4)])
                out.append(hex[Int(c & 15)])
            default: out.append(c)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Streams each tensor's data, converted to `dtype`, in chunks of at most 2M elements (read
    /// through the engine's host view of each tensor, `withHostBuffer`).
    private static func emitData(names: [(String, Tensor)], dtype: SafetensorsWriteDType,
                                 to sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let chunkElements = 1 << 21
        #if _endian(little)
        if dtype == .f32 {   // the tensor's memory is already the file's bytes
            for (_, tensor) in names {
                try tensor.withHostBuffer { values in
                    var done = 0
                    while done < values.count {
                        let n = min(chunkElements, values.count - done)
                        try sink(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: values[done..<(done + n)])))
                        done += n
                    }
                }
            }
            return
        }
        #endif
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: chunkElements * 4, alignment: 16)
        defer { scratch.deallocate() }
        let halves = scratch.bindMemory(to: UInt16.self, capacity: chunkElements)
        for (_, tensor) in names { try tensor.withHostBuffer { values in
            var done = 0
            while done < values.count {
                let n = min(chunkElements, values.count - done)
                let s = values.baseAddress! + done
                let bytes: Int
                switch dtype {
                case .f16:
                    for i in 0..<n { halves[i] = HalfPrecision.float16Bits(from: s[i]).littleEndian }
                    bytes = n * 2
                case .bf16:
                    for i in 0..<n { halves[i] = HalfPrecision.bfloat16Bits(from: s[i]).littleEndian }
                    bytes = n * 2
                case .f32:
                    for i in 0..<n {
                        scratch.storeBytes(of: s[i].bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
                    }
                    bytes = n * 4
                }
                try sink(UnsafeRawBufferPointer(start: scratch, count: bytes))
                done += n
            }
        } }
    }
}

@inline(__always)
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}

private func errorText() -> String {
    String(cString: strerror(errno))
}
