import Diffusion
import Foundation
import NeuralNetworks

extension Setting {
    /// A file mapping class-folder names (or synsets) to the model's class ids (`ClassMap`).
    public static let classMap = Setting("class_map")
    /// Map the sorted class folders to class ids 0, 1, ... (only when asked for).
    public static let folderOrder = Setting("folder_order")
}

/// A class map file: which class id each class folder of an image folder holds. Two formats:
///
/// - text: one `NAME INDEX` per line: the last whitespace-separated field is the class id (a
///   decimal integer), everything before it (trimmed, spaces allowed) the folder name or synset;
///   blank lines and lines starting with `#` are skipped. E.g. `n01440764 0`.
/// - JSON (a file whose first non-blank character is `{`): `{"NAME": INDEX, ...}`, or Keras'
///   `imagenet_class_index.json` layout `{"INDEX": ["NAME", "label"], ...}`.
///
/// A name given twice is refused; several names may map to one id.
public struct ClassMap: Equatable, Sendable {
    public let entries: [String: Int]
    public let file: String

    public init(entries: [String: Int], file: String) {
        self.entries = entries
        self.file = file
    }

    public static func load(_ url: URL) throws -> ClassMap {
        let text: String
        do { text = try String(contentsOf: url, encoding: .utf8) } catch {
            throw SettingError(.classMap, "cannot read \(url.path): \(error.localizedDescription)")
        }
        if text.first(where: { !$0.isWhitespace }) == "{" { return try parseJSON(text, file: url.path) }
        var entries: [String: Int] = [:]
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard fields.count >= 2, let id = Int(fields.last!), id >= 0 else {
                throw SettingError(.classMap, "\(url.path):\(n + 1): '\(line)' is not 'NAME INDEX' (a folder name, then its class id)")
            }
            let name = line.dropLast(fields.last!.count).trimmingCharacters(in: .whitespaces)
            guard entries.updateValue(id, forKey: name) == nil else {
                throw SettingError(.classMap, "\(url.path):\(n + 1): '\(name)' is mapped twice")
            }
        }
        guard !entries.isEmpty else { throw SettingError(.classMap, "\(url.path) maps no folder") }
        return ClassMap(entries: entries, file: url.path)
    }

    /// A JSON entry's value: a class id, or Keras' ["NAME", "label"].
    enum JSONEntry: Decodable {
        case index(Int), names([String])
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let i = try? c.decode(Int.self) { self = .index(i) } else { self = .names(try c.decode([String].self)) }
        }
    }

    static func parseJSON(_ text: String, file: String) throws -> ClassMap {
        guard let object = try? JSONDecoder().decode([String: JSONEntry].self, from: Data(text.utf8)) else {
            throw SettingError(.classMap, "\(file) is not a JSON object {\"NAME\": INDEX, ...} or {\"INDEX\": [\"NAME\", ...], ...}")
        }
        var entries: [String: Int] = [:]
        for (key, value) in object.sorted(by: { $0.key < $1.key }) {
            let name: String, id: Int
            switch value {
            case .index(let i): (name, id) = (key, i)
            case .names(let pair):
                guard let first = pair.first, let k = Int(key) else {
                    throw SettingError(.classMap, "\(file): entry '\(key)' is neither \"NAME\": INDEX nor \"INDEX\": [\"NAME\", ...]")
                }
                (name, id) = (first, k)  // Keras: {"0": ["n01440764", "tench"]}
            }
            guard id >= 0 else { throw SettingError(.classMap, "\(file): '\(name)' has a negative class id") }
            guard entries.updateValue(id, forKey: name) == nil else { throw SettingError(.classMap, "\(file): '\(name)' is mapped twice") }
        }
        guard !entries.isEmpty else { throw SettingError(.classMap, "\(file) maps no folder") }
        return ClassMap(entries: entries, file: file)
    }
}

/// Which of the model's classes each class folder of an image folder holds: the image folder's
/// labels are class-folder indices (sorted names, `ImageFolder.files`), the model's are its
/// class ids; this maps one to the other, never silently by position.
///
/// - `byName`: each folder name is matched with the model's class names: exactly, else ignoring
///   case and every character that is not a letter or digit ("ankle_boot" is "Ankle boot",
///   "T-shirt_top" is "T-shirt/top"), against the full name or one of its comma-separated
///   synonyms ("great_white_shark" is class "great white shark, white shark, man-eater"). A
///   folder matching no class, or several, is refused, naming the folder and the expected names;
///   so are two folders matching one class.
/// - `byClassMap`: each folder name looked up in a `ClassMap`; a folder not in it is refused.
/// - `byFolderOrder`: folder k is class k (what the folder layout alone says; only when asked).
public struct ClassFolderMapping: Equatable, Sendable {
    public enum Source: Equatable, Sendable {
        case names
        case classMap(String)
        case folderOrder
    }

    /// The class folders, sorted (the image folder's label order).
    public let folders: [String]
    /// The model's class id of each folder.
    public let classIDs: [Int]
    /// The model's class names (all of its classes, by id).
    public let classNames: [String]
    public let source: Source

    public init(folders: [String], classIDs: [Int], classNames: [String], source: Source) {
        precondition(folders.count == classIDs.count && classIDs.allSatisfy { classNames.indices.contains($0) })
        self.folders = folders
        self.classIDs = classIDs
        self.classNames = classNames
        self.source = source
    }

    /// Lower-case letters and digits only.
    public static func normalized(_ name: String) -> String {
        String(name.lowercased().unicodeScalars.filter { CharacterSet.alphanumerics.contains($0) }.map(Character.init))
    }

    /// The class ids whose name is `folder`: exact full names first, else normalized full names or
    /// synonyms.
    static func candidates(_ folder: String, classNames: [String]) -> [Int] {
        let exact = classNames.indices.filter { classNames[$0] == folder }
        if !exact.isEmpty { return exact }
        let wanted = normalized(folder)
        guard !wanted.isEmpty else { return [] }
        return classNames.indices.filter { k in
            let name = classNames[k]
            return normalized(name) == wanted || name.split(separator: ",").contains { normalized(String($0)) == wanted }
        }
    }

    public static func byName(folders: [String], classNames: [String], root: String) throws -> ClassFolderMapping {
        var ids: [Int] = []
        for folder in folders {
            let found = candidates(folder, classNames: classNames)
            if found.isEmpty {
                throw SettingError(.data, "\(root)/\(folder): the folder name '\(folder)' matches none of the model's \(classNames.count) class names "
                    + "(\(ModelClassNames.listed(classNames.map { "'\($0)'" }))); rename the folder, or map the folders with \(Setting.classMap) FILE")
            }
            guard found.count == 1 else {
                let listing = found.map { "\($0) '\(classNames[$0])'" }.joined(separator: ", ")
                throw SettingError(.data, "\(root)/\(folder): the folder name '\(folder)' matches several classes (\(listing)); map the folders with \(Setting.classMap) FILE")
            }
            if let other = ids.firstIndex(of: found[0]) {
                throw SettingError(.data, "\(root): the folders '\(folders[other])' and '\(folder)' both match class \(found[0]) '\(classNames[found[0]])'")
            }
            ids.append(found[0])
        }
        return ClassFolderMapping(folders: folders, classIDs: ids, classNames: classNames, source: .names)
    }

    public static func byClassMap(_ map: ClassMap, folders: [String], classNames: [String], root: String) throws -> ClassFolderMapping {
        var ids: [Int] = []
        for folder in folders {
            guard let id = map.entries[folder] else {
                throw SettingError(.classMap, "\(map.file) does not map the folder \(root)/\(folder) (it maps \(map.entries.count) names, e.g. "
                    + "\(ModelClassNames.listed(map.entries.keys.sorted().prefix(5).map { "'\($0)'" })))")
            }
            guard id < classNames.count else {
                throw SettingError(.classMap, "\(map.file) maps '\(folder)' to class \(id); the model has classes 0..<\(classNames.count)")
            }
            ids.append(id)
        }
        return ClassFolderMapping(folders: folders, classIDs: ids, classNames: classNames, source: .classMap(map.file))
    }

    /// Folder k is class k; `classNames` default to the folder names.
    public static func byFolderOrder(folders: [String], classNames: [String]? = nil, root: String) throws -> ClassFolderMapping {
        let names = classNames ?? folders
        guard folders.count <= names.count else {
            throw SettingError(.folderOrder, "\(root) has \(folders.count) class folders; the model has \(names.count) classes")
        }
        return ClassFolderMapping(folders: folders, classIDs: Array(folders.indices), classNames: names, source: .folderOrder)
    }

    /// "by name", "by the class map FILE" or "by folder order".
    public var how: String {
        switch source {
        case .names: return "by name"
        case .classMap(let file): return "by the class map \(file)"
        case .folderOrder: return "by folder order"
        }
    }

    /// One "FOLDER/ -> class ID 'NAME'" line per folder (the first `limit`, then how many more).
    public func lines(limit: Int = 20) -> [String] {
        var out = zip(folders, classIDs).prefix(limit).map { "  \($0)/ -> class \($1) '\(classNames[$1])'" }
        if folders.count > limit { out.append("  ... and \(folders.count - limit) more folders") }
        return out
    }

    /// `dataset` with each label (a folder index) replaced by its class id and the model's class names.
    public func apply(to dataset: ImageDataset) -> ImageDataset {
        var d = ImageDataset(name: dataset.name, height: dataset.height, width: dataset.width, channels: dataset.channels,
                             pixels: dataset.pixels, labels: dataset.labels.map { classIDs[$0] }, classNames: classNames)
        d.paths = dataset.paths
        return d
    }
}
