import Datasets
import Diffusion
import Foundation

/// `diffclass export`: dataset images as PNG files in class folders, the layout `eval --data DIR`
/// reads (and files `classify` takes), e.g. test images for a first run.
struct ExportCommand: Command {
    let name = "export"
    let summary = "write dataset images as PNG files in class folders (for eval --data DIR and classify)"
    let usage = """
    usage: diffclass export (--dataset fashion-mnist | --data IDX_DIR) [--split test|train] [--limit N] --out DIR
                            [--model DIR | --labels a,b,c | --labels-file FILE]

    Writes the first --limit images (default 10) of the split (default test) as DIR/CLASS/NNNNN.png
    (NNNNN: the image's index in the split), one folder per class named after the class ('T-shirt/top'
    becomes T-shirt_top/), so that eval --data DIR matches every folder to its class by name. The class
    names are the dataset's (Fashion-MNIST's), or the model folder's (--model), or given (--labels,
    --labels-file; in class-id order). A file already in DIR with other contents is refused, with
    nothing written; files with the same contents are kept, so an export can be rerun or extended.
    """
    let valuedFlags: Set<String> = ["dataset", "data", "split", "limit", "out", "model", "labels", "labels-file"]
    func run(_ args: inout Arguments) throws -> Int32 { try runExport(&args); return 0 }
}

func runExport(_ args: inout Arguments) throws {
    let dataset = args.string("dataset"), data = args.string("data")
    let splitName = args.string("split") ?? "test"
    let limit = try args.int("limit", range: 1...10_000_000) ?? 10
    let out = args.string("out")
    let modelPath = args.string("model")
    let given = try ClassFolderFlags.givenNames(&args)
    try args.finish(command: "export")
    guard let out else { throw UsageError("export needs --out DIR (the folder to write the class folders into)") }
    guard let split = ImageDataset.Split(rawValue: splitName) else { throw UsageError("--split must be train or test, got '\(splitName)'") }
    if modelPath != nil && given != nil { throw UsageError("give --model DIR or --labels/--labels-file for the class names, not both") }
    let ds = try DatasetLocator.load(dataset: dataset, data: data, split: split)
    guard ds.paths == nil else {
        throw UsageError("--data: \(data ?? ds.name) is already an image folder (export reads MNIST-format IDX files or --dataset fashion-mnist)")
    }
    var names = given
    if let modelPath {
        guard let fromModel = try ModelClassNames.load(from: URL(fileURLWithPath: modelPath)) else {
            throw UsageError("--model: \(modelPath) has no class names (id2label in model_index.json or config.json, or \(ModelClassNames.fileName))")
        }
        names = fromModel
    }
    if let names, let label = ds.labels.max(), label >= names.count {
        throw UsageError("\(modelPath.map { "--model: \($0)" } ?? "--labels") gives \(names.count) class names; \(ds.name) has labels up to \(label)")
    }
    let indices = Array(0..<min(limit, ds.count))
    let outcome = try ImageFolderExport.write(ds, indices: indices, to: URL(fileURLWithPath: out), classNames: names)
    let counts = Dictionary(grouping: indices.map { ImageFolderExport.folderName(forClass: (names ?? ds.classNames)[ds.labels[$0]]) }, by: { $0 })
        .mapValues(\.count)
    print("export: \(indices.count) images of \(ds.name) \(splitName) -> \(out): \(outcome.written.count) written"
        + (outcome.unchanged.isEmpty ? "" : ", \(outcome.unchanged.count) already there (same contents)"))
    print("class folders: " + outcome.folders.map { "\($0)/ (\(counts[$0] ?? 0))" }.joined(separator: ", "))
    print("classify them: diffclass eval --model MODEL --data \(out) --out RUN   or   diffclass classify --model MODEL \(out)/*/*.png")
}
