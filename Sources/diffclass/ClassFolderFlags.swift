import Datasets
import Diffusion
import Foundation

/// How the class folders of `--data DIR` become the model's class ids (`ClassFolderMapping`):
/// by name against the model's class names (its folder's, or `--labels` / `--labels-file`), by
/// `--class-map FILE`, or by folder order with `--folder-order`. Shared by `eval`, `robust` and
/// `analyze` on class-conditional models and `eval` on DiT pipelines.
struct ClassFolderFlags {
    static let valuedFlags: Set<String> = ["labels", "labels-file", "class-map"]
    static let switches: Set<String> = ["folder-order"]
    static let usage = """
    class folders (--data DIR holding one subfolder of PNG/JPEG files per class):
      Each folder name is matched with the model's class names: exactly, else ignoring case and every
      character but letters and digits ('ankle_boot' is 'Ankle boot', 'T-shirt_top' is 'T-shirt/top'), or
      one of a name's comma-separated synonyms ('great_white_shark'). A folder matching no class (or
      several) is refused. The class names are the model folder's (id2label in model_index.json or
      config.json, else class_names.txt: one name per line, line k = class k), or
      --labels a,b,c | --labels-file FILE (one name per line, in class-id order).
      --class-map FILE   which class id each folder holds, instead of names: text lines 'FOLDER INDEX'
                         (e.g. 'n01440764 0'; '#' comments), or JSON {"FOLDER": INDEX, ...} or Keras'
                         imagenet_class_index.json {"INDEX": ["FOLDER", "name"], ...}
      --folder-order     the sorted folders are classes 0, 1, ... (only when asked)
    """

    var givenNames: [String]?
    var classMap: String?
    var folderOrder: Bool

    init(_ args: inout Arguments) throws {
        givenNames = try Self.givenNames(&args)
        classMap = args.string("class-map")
        folderOrder = args.flag("folder-order")
        if classMap != nil && folderOrder { throw UsageError("give --class-map FILE or --folder-order, not both") }
    }

    /// The class names of `--labels a,b,c` or `--labels-file FILE` (nil when neither is given), for
    /// commands that take names but no folder mapping (`export`).
    static func givenNames(_ args: inout Arguments) throws -> [String]? {
        let givenNames: [String]?
        let text = args.string("labels"), file = args.string("labels-file")
        switch (text, file) {
        case let (t?, nil):
            let names = t.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard !names.contains("") else { throw UsageError("--labels: '\(t)' has an empty label") }
            guard Set(names).count == names.count else { throw UsageError("--labels: a label is given twice") }
            givenNames = names
        case let (nil, f?):
            do { givenNames = try ModelClassNames.lines(of: URL(fileURLWithPath: f)) } catch { throw UsageError("--labels-file: \(error)") }
        case (nil, nil):
            givenNames = nil
        default:
            throw UsageError("give --labels or --labels-file, not both")
        }
        return givenNames
    }

    var isEmpty: Bool { givenNames == nil && classMap == nil && !folderOrder }

    /// The mapping of the class folders `folders` of `root` (sorted), given the model folder's
    /// own class names (`modelNames`, nil when it has none).
    func mapping(folders: [String], root: String, model: String, modelNames: [String]?) throws -> ClassFolderMapping {
        let names = givenNames ?? modelNames
        if let classMap {
            guard let names else {
                throw UsageError("--class-map: \(model) has no class names (id2label or \(ModelClassNames.fileName)); give them with --labels or --labels-file")
            }
            return try ClassFolderMapping.byClassMap(try ClassMap.load(URL(fileURLWithPath: classMap)), folders: folders, classNames: names, root: root)
        }
        if folderOrder { return try ClassFolderMapping.byFolderOrder(folders: folders, classNames: names, root: root) }
        guard let names else {
            throw UsageError("--data: \(model) has no class names (id2label in model_index.json or config.json, or \(ModelClassNames.fileName)), "
                + "so the class folders of \(root) (\(ModelClassNames.listed(folders))) cannot be matched to its classes: "
                + "give the names with --labels a,b,c or --labels-file FILE, map the folders with --class-map FILE, "
                + "or take them in folder order with --folder-order")
        }
        return try ClassFolderMapping.byName(folders: folders, classNames: names, root: root)
    }

    /// The dataset with the model's class ids as labels (image folders), or unchanged (IDX
    /// datasets, which carry class ids; the flags are then refused), with the mapping used.
    func apply(to ds: ImageDataset, data: String?, model: String, modelNames: [String]?) throws -> (ImageDataset, ClassFolderMapping?) {
        guard ds.paths != nil, let data else {
            if !isEmpty {
                throw UsageError("--labels, --labels-file, --class-map and --folder-order apply to image folders; \(ds.name) holds class ids")
            }
            return (ds, nil)
        }
        let m = try mapping(folders: ds.classNames, root: data, model: model, modelNames: modelNames)
        return (m.apply(to: ds), m)
    }

    /// "class folders matched by name: ..." and one line per folder.
    static func describe(_ m: ClassFolderMapping) -> String {
        (["class folders \(m.how), \(m.folders.count) of the model's \(m.classNames.count) classes:"] + m.lines()).joined(separator: "\n")
    }
}
