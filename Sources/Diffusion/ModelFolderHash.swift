import Foundation
import NeuralNetworks

/// A content hash of a model folder: what a run folder records (`model_hash`) so that weights or
/// configs changed in place are not mixed into a resumed run.
///
/// Hashed: every regular file under the folder whose name ends in .json, .safetensors, .txt or
/// .model, in sorted relative-path order, each as (path, size, contents). Left out: what does not
/// change a model's outputs or is not loaded: `class_names.txt` (class names; labels are checked
/// per line on resume), `calibration.json` (its tau is a setting of its own), READMEs, images,
/// logs, and a training run's `checkpoint` folder. Symbolic links are followed.
///
/// The hash is 64-bit, non-cryptographic (four xxHash64-style lanes over 8-byte words): it
/// detects changes, it does not authenticate. Its text is "h64:" and 16 hex digits. Reading runs
/// at memory speed (a few GB/s), so a Stable Diffusion folder costs about a second from the page
/// cache.
public enum ModelFolderHash {
    static let hashedExtensions: Set<String> = ["json", "safetensors", "txt", "model"]
    static let skippedNames: Set<String> = ["class_names.txt", "calibration.json"]
    static let skippedFolders: Set<String> = ["checkpoint", "checkpoint.tmp", "checkpoint.old"]

    /// The files hashed, relative to `folder`, sorted.
    public static func files(in folder: URL) throws -> [String] {
        let fm = FileManager.default
        let root = folder.resolvingSymlinksInPath()
        var isDirectory: ObjCBool = false
        guard fm.fileExists(atPath: root.path, isDirectory: &isDirectory) else {
            throw ConfigError(file: folder.path, "no such model folder")
        }
        guard isDirectory.boolValue else { return [] }
        var out: [String] = []
        func walk(_ dir: URL, _ prefix: String, depth: Int) throws {
            guard depth < 8 else { return }
            let names: [String]
            do { names = try fm.contentsOfDirectory(atPath: dir.path) } catch {
                throw ConfigError(file: dir.path, "cannot list the model folder (\(error.localizedDescription))")
            }
            for name in names.sorted() where !name.hasPrefix(".") {
                let url = dir.appendingPathComponent(name)
                var sub: ObjCBool = false
                guard fm.fileExists(atPath: url.path, isDirectory: &sub) else { continue }
                if sub.boolValue {
                    if !skippedFolders.contains(name) { try walk(url, prefix + name + "/", depth: depth + 1) }
                } else if hashedExtensions.contains((name as NSString).pathExtension.lowercased()), !skippedNames.contains(name) {
                    out.append(prefix + name)
                }
            }
        }
        try walk(root, "", depth: 0)
        return out.sorted()
    }

    /// "h64:" and 16 hex digits over the folder's hashed files (a single file: that file).
    public static func of(_ folder: URL) throws -> String {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory)
        let names = isDirectory.boolValue ? try files(in: folder) : [""]
        var h = StreamHash()
        for name in names {
            let url = name.isEmpty ? folder : folder.appendingPathComponent(name)
            let data: Data
            do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
                throw ConfigError(file: url.path, "cannot read it to hash the model (\(error.localizedDescription))")
            }
            h.add(Data(name.utf8))
            h.add(withUnsafeBytes(of: UInt64(data.count).littleEndian) { Data($0) })
            h.add(data)
        }
        return "h64:" + String(format: "%016llx", h.finish())
    }

    /// Four lanes of xxHash64's round over the concatenation of everything added, in order of
    /// 32-byte blocks (a tail shorter than a block is carried into the next `add`).
    struct StreamHash {
        static let p1: UInt64 = 0x9E37_79B1_85EB_CA87, p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
        static let p3: UInt64 = 0x1656_67B1_9E37_79F9, p4: UInt64 = 0x85EB_CA77_C2B2_AE63
        var lanes: (UInt64, UInt64, UInt64, UInt64) = (p1 &+ p2, p2, 0, 0 &- p1)
        var pending = [UInt8]()
        var total: UInt64 = 0

        @inline(__always) static func round(_ acc: UInt64, _ word: UInt64) -> UInt64 {
            let a = acc &+ word &* p2
            return ((a << 31) | (a >> 33)) &* p1
        }

        mutating func blocks(_ p: UnsafeRawBufferPointer) {
            var (a, b, c, d) = lanes
            var i = 0
            while i + 32 <= p.count {
                a = Self.round(a, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                b = Self.round(b, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)))
                c = Self.round(c, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)))
                d = Self.round(d, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)))
                i += 32
            }
            lanes = (a, b, c, d)
        }

        mutating func add(_ data: Data) {
            total &+= UInt64(data.count)
            data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
                var rest = raw[...]
                if !pending.isEmpty {
                    let take = Swift.min(32 - pending.count, rest.count)
                    pending.append(contentsOf: rest.prefix(take))
                    rest = rest.dropFirst(take)
                    if pending.count == 32 { pending.withUnsafeBytes { blocks($0) }; pending.removeAll(keepingCapacity: true) }
                }
                let whole = rest.count / 32 * 32
                if whole > 0 { blocks(UnsafeRawBufferPointer(rebasing: rest.prefix(whole))) }
                pending.append(contentsOf: rest.dropFirst(whole))
            }
        }

        func finish() -> UInt64 {
            let (a, b, c, d) = lanes
            var h = ((a << 1) | (a >> 63)) &+ ((b << 7) | (b >> 57)) &+ ((c << 12) | (c >> 52)) &+ ((d << 18) | (d >> 46))
            h &+= total
            for byte in pending { h = (h ^ (UInt64(byte) &* Self.p4)) &* Self.p1; h = (h << 11) | (h >> 53) }
            h ^= h >> 33; h = h &* Self.p2; h ^= h >> 29; h = h &* Self.p3; h ^= h >> 32
            return h
        }
    }
}
