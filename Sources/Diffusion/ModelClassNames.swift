import Foundation
import NeuralNetworks

extension Setting {
    /// The model's class names given by the user (a comma-separated list).
    public static let labels = Setting("labels")
    /// The model's class names given as a file, one per line (line k names class k).
    public static let labelsFile = Setting("labels_file")
}

/// The names of a class-conditional model's classes, in class-id order, as a model folder holds
/// them. Two places are read, in this order:
///
/// - `id2label` in `model_index.json` (diffusers' `DiTPipeline` folders carry it there) or in
///   `config.json` (transformers' convention): `{"0": "tench, Tinca tinca", "1": ...}`;
/// - `class_names.txt`: one name per line, line k (blank lines skipped) naming class k
///   (`diffclass train` writes it beside the model).
///
/// Names may hold comma-separated synonyms, as ImageNet's ("great white shark, white shark").
public enum ModelClassNames {
    public static let fileName = "class_names.txt"

    /// The class names stored in `folder`, or nil when it holds none. `classCount`, when known,
    /// is the number the names must have (an `id2label` must name each id 0..<classCount once);
    /// errors name the file.
    public static func load(from folder: URL, classCount: Int? = nil) throws -> [String]? {
        for name in ["model_index.json", DiffusersFolder.configName] {
            let url = folder.appendingPathComponent(name)
            guard let data = try? Data(contentsOf: url),
                  let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
                  let table = object["id2label"], !(table is NSNull) else { continue }
            let count = classCount ?? (table as? [String: Any])?.count ?? 0
            return try names(id2label: table, classCount: count, file: url.path)
        }
        let text = folder.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: text.path) else { return nil }
        let names = try lines(of: text)
        if let classCount, names.count != classCount {
            throw ConfigError(file: text.path, "\(names.count) class names for the model's \(classCount) classes (one name per line)")
        }
        return names
    }

    /// The non-blank lines of a text file, trimmed; at least one, none twice (errors name the file).
    public static func lines(of url: URL) throws -> [String] {
        let content: String
        do { content = try String(contentsOf: url, encoding: .utf8) } catch {
            throw ConfigError(file: url.path, "cannot read: \(error.localizedDescription)")
        }
        let names = content.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw ConfigError(file: url.path, "no class names (one per line)") }
        var seen: Set<String> = []
        for n in names where !seen.insert(n).inserted { throw ConfigError(file: url.path, "class name '\(n)' is given twice") }
        return names
    }

    /// Writes `class_names.txt` into `folder` (one name per line).
    public static func write(_ names: [String], to folder: URL) throws {
        try Data((names.joined(separator: "\n") + "\n").utf8).write(to: folder.appendingPathComponent(fileName), options: .atomic)
    }

    /// The class names from an `id2label` value (`{"0": "tench, Tinca tinca", ...}`: keys are the
    /// decimal class ids, values the names), which must name every id 0..<classCount and no other;
    /// errors name `file` and the missing, extra or malformed entries.
    public static func names(id2label: Any?, classCount: Int, file: String) throws -> [String] {
        guard let id2label, !(id2label is NSNull) else {
            throw ConfigError(file: file, "no id2label (the class names): add it, or give the names of the \(classCount) classes another way (a labels file)")
        }
        guard let table = id2label as? [String: Any] else { throw ConfigError(file: file, "id2label must be an object {\"0\": \"name\", ...}") }
        var names = [String?](repeating: nil, count: classCount)
        var malformed: [String] = [], outside: [Int] = []
        for (key, value) in table {
            // Python's int(key), as diffusers reads it: surrounding spaces and leading zeros are fine.
            guard let id = Int(key.trimmingCharacters(in: .whitespaces)) else {
                malformed.append("'\(key)' (not a class id)")
                continue
            }
            guard let name = value as? String else { malformed.append("'\(key)' (its name is not a string)"); continue }
            guard id >= 0, id < classCount else { outside.append(id); continue }
            guard names[id] == nil else { malformed.append("'\(key)' (id \(id) given twice)"); continue }
            names[id] = name
        }
        if !malformed.isEmpty {
            throw ConfigError(file: file, "id2label has malformed entries: \(listed(malformed.sorted()))")
        }
        if !outside.isEmpty {
            throw ConfigError(file: file, "id2label has ids outside 0..<\(classCount) (the model's classes): \(listed(outside.sorted().map(String.init)))")
        }
        let missing = names.indices.filter { names[$0] == nil }
        if !missing.isEmpty {
            throw ConfigError(file: file, "id2label lacks \(missing.count) of the \(classCount) class ids: \(listed(missing.map(String.init)))")
        }
        return names.map { $0! }
    }

    /// At most 12 items, then how many more.
    public static func listed(_ items: [String]) -> String {
        items.count <= 12 ? items.joined(separator: ", ") : items.prefix(12).joined(separator: ", ") + ", ... (\(items.count - 12) more)"
    }
}
