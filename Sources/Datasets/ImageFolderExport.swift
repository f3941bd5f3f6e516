import Foundation
import Images

/// Writes dataset images as PNG files into the image-folder layout that `ImageFolder` reads:
/// `DIR/CLASS/INDEX.png`, one subfolder per class named after the class, so that
/// `ClassFolderMapping.byName` maps every folder back to its class (a first run can classify
/// exported test images as it would its own).
public enum ImageFolderExport {
    /// The folder a class is written to: its name with `/` replaced by `_` (`T-shirt/top` becomes
    /// `T-shirt_top`, which `ClassFolderMapping` matches ignoring punctuation) and a leading `.`
    /// by `_` (`ImageFolder` skips hidden folders).
    public static func folderName(forClass name: String) -> String {
        var s = name.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "\0", with: "_")
        if s.hasPrefix(".") { s = "_" + s.dropFirst() }
        return s
    }

    /// What `write` did: the files written, those already there with the same bytes (kept),
    /// and the class folders used.
    public struct Outcome: Equatable, Sendable {
        public var written: [String] = []
        public var unchanged: [String] = []
        public var folders: [String] = []
    }

    /// Writes images `indices` of `dataset` to `root/FOLDER/NNNNN.png` (NNNNN: the image's index in
    /// the dataset, zero-padded to at least 5 digits), FOLDER named after `classNames[label]`
    /// (default: the dataset's class names). A file already there with other bytes is refused
    /// before anything is written (naming it); one with the same bytes is kept, so an export can
    /// be repeated or extended with a larger limit. Class names must give distinct folders that
    /// map back to their classes by name.
    @discardableResult
    public static func write(_ dataset: ImageDataset, indices: [Int], to root: URL, classNames: [String]? = nil) throws -> Outcome {
        let names = classNames ?? dataset.classNames
        if let bad = indices.first(where: { !dataset.labels.indices.contains($0) }) {
            throw DatasetError(file: dataset.name, "image \(bad) outside the \(dataset.count) images")
        }
        if let label = indices.map({ dataset.labels[$0] }).first(where: { !names.indices.contains($0) }) {
            throw DatasetError(file: dataset.name, "label \(label) has no class name (\(names.count) names)")
        }
        let folders = names.map(folderName(forClass:))
        let used = Array(Set(indices.map { dataset.labels[$0] })).sorted()
        // The folders must come back as their classes, or eval --data on the export would refuse them (or worse).
        for k in used {
            let found = ClassFolderMapping.candidates(folders[k], classNames: names)
            guard found == [k] else {
                throw DatasetError(file: root.path, "the class name '\(names[k])' gives the folder '\(folders[k])', which "
                    + (found.isEmpty ? "matches no class name" : "matches the classes \(found.map { "\($0) '\(names[$0])'" }.joined(separator: ", "))"))
            }
        }
        let digits = Swift.max(5, String(Swift.max(dataset.count - 1, 0)).count)
        let fm = FileManager.default
        var planned: [(path: String, url: URL, data: Data, exists: Bool)] = []
        let per = dataset.height * dataset.width * dataset.channels
        for i in indices {
            let label = dataset.labels[i]
            let name = String(repeating: "0", count: Swift.max(0, digits - String(i).count)) + String(i) + ".png"
            let relative = folders[label] + "/" + name
            let url = root.appendingPathComponent(folders[label]).appendingPathComponent(name)
            let image = Image(width: dataset.width, height: dataset.height, channels: dataset.channels,
                              pixels: Array(dataset.pixels[(i * per)..<((i + 1) * per)]))
            let data = try image.pngData()
            var isDir: ObjCBool = false
            var exists = false
            if fm.fileExists(atPath: url.path, isDirectory: &isDir) {
                guard !isDir.boolValue, (try? Data(contentsOf: url)) == data else {
                    throw DatasetError(file: url.path, "already exists and differs from image \(i) of \(dataset.name); "
                        + "not overwritten (nothing was written): choose another output folder or remove it")
                }
                exists = true
            }
            planned.append((relative, url, data, exists))
        }
        var outcome = Outcome()
        outcome.folders = used.map { folders[$0] }
        for p in planned {
            if p.exists { outcome.unchanged.append(p.path); continue }
            do {
                try fm.createDirectory(at: p.url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try p.data.write(to: p.url, options: .atomic)
            } catch {
                throw DatasetError(file: p.url.path, "cannot write: \(error.localizedDescription)")
            }
            outcome.written.append(p.path)
        }
        return outcome
    }
}
