import Datasets
import Diffusion
import DiffusionClassifier
import Foundation
import Images
import TensorEngine

/// `diffclass classify`: labels for image files.
struct ClassifyCommand: Command {
    let name = "classify"
    let summary = "label PNG/JPEG files (resized to the model's size)"
    let usage = """
    usage: diffclass classify --model DIR [--labels a,b,c] [--top K] [--json] [method options] IMAGE...
           diffclass classify --model DIT_DIR [--labels-file FILE | --labels a,b,c] [--weights-dtype fp16] [--top K] [--json] IMAGE...

    Class names: --labels, else the model folder's (id2label or class_names.txt), else Fashion-MNIST's
    for a 10-class 28x28 gray model, else the class ids. Each file is resized to the model's sample size and classified as image index 0. --json: one
    object per image (path, prediction, class_name, probabilities, mean_errors, calls). A file that
    cannot be read is named on stderr (exit status 1); the others are still classified.

    \(DiTSetup.usage)

    \(MethodFlags.usage)
    """
    let valuedFlags = MethodFlags.valuedFlags.union(["model", "labels", "labels-file", "weights-dtype", "top"])
    let switches: Set<String> = MethodFlags.switches.union(["json"])
    func run(_ args: inout Arguments) throws -> Int32 { try runClassify(&args) }
}

/// One image's answer for `classify --json` (snake_case keys, sorted).
private struct ImageAnswer: Encodable {
    let path: String
    let prediction: Int
    let className: String
    let probabilities: [Double]
    let meanErrors: [Double?]
    let calls: Int
}

/// `diffclass classify --model DIR [timestep flags as eval] IMAGE...`: labels PNG/JPEG files.
///
/// Each file is decoded, resized to the model's sample size and mapped to [-1, 1]
/// (`Image.modelInput`), then classified among the model's classes (class embeddings minus the
/// null class, or as many as `--labels` names). Every file is classified as image index 0, so its
/// seeded noise, hence its answer, does not depend on its position in the list. A file that
/// cannot be read is reported on stderr, naming it, with nothing printed on stdout for it; the
/// others are still classified and the exit status is 1.
func runClassify(_ args: inout Arguments) throws -> Int32 {
    guard let modelPath = args.string("model") else { throw UsageError("classify needs --model DIR") }
    let json = args.flag("json")
    let top = try args.int("top", range: 1...1000) ?? 3
    if DiTSetup.isPipelineFolder(modelPath) { return try runDiTClassify(&args, modelPath: modelPath, json: json, top: top) }
    let labelsText = args.string("labels")
    let flags = try MethodFlags(&args)
    try args.finish(command: "classify", takesArguments: true)
    let files = args.positional
    guard !files.isEmpty else { throw UsageError("classify needs image files: diffclass classify --model DIR IMAGE...") }

    let modelURL = URL(fileURLWithPath: modelPath)
    // Per model family: the predictor and schedule, the image size and the number of class conditions.
    let model: ConditionalNoisePredictor, schedule: NoiseSchedule, size: [Int], channels: Int, classConditions: Int
    if EDMSetup.isEDMFolder(modelPath) {
        let (edm, classifierModel) = try EDMSetup.load(modelPath, grid: try flags.sigmaGrid())
        (model, schedule) = (classifierModel.predictor, classifierModel.schedule)
        size = [edm.config.imgResolution, edm.config.imgResolution]
        channels = edm.config.imgChannels
        classConditions = edm.labelDim
    } else {
        let (unet, unetSchedule) = try UNet2DModel.loadWithSchedule(from: modelURL)
        guard let embeds = unet.config.numClassEmbeds else { throw UsageError("\(modelPath): the model is not class-conditional") }
        guard embeds >= 2 || labelsText != nil else { throw UsageError("\(modelPath): one class embedding; name the classes with --labels") }
        (model, schedule) = (unet, unetSchedule)
        size = unet.config.sampleSize ?? [28, 28]
        channels = unet.config.inChannels
        classConditions = embeds - 1  // the last embedding is the null class
    }
    let names: [String]
    if let labelsText {
        names = labelsText.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard names.count >= 1, names.count <= max(classConditions, 1), !names.contains("") else {
            throw UsageError("--labels: '\(labelsText)' must name 1 to \(max(classConditions, 1)) classes, comma-separated, none empty")
        }
    } else if let stored = try ModelClassNames.load(from: modelURL) {
        guard stored.count <= max(classConditions, 1) else { throw UsageError("\(modelPath): \(stored.count) class names for \(max(classConditions, 1)) classes") }
        names = stored
    } else if classConditions == 10, channels == 1, size == [28, 28] {
        names = FashionMNIST.classNames
    } else {
        names = (0..<classConditions).map(String.init)
    }
    let settings = try flags.settings(model: modelURL.standardizedFileURL.path, dataset: "files", split: "none", classes: names.count,
                                      schedule: schedule, modelFolder: modelPath)
    let classifier = try settings.makeClassifier(model: model, schedule: schedule, batchSize: flags.batchSize)
    if !json {
        print("classify: \(files.count) files, \(names.count) classes, \(settings.method.summary), loss \(settings.loss.rawValue), "
            + "seed \(settings.seed); \(flags.tauDescription(settings, modelFolder: modelPath))")
    }
    return labelFiles(files) { file in
        let x0 = try Image.modelInput(URL(fileURLWithPath: file), channels: channels, height: size[0], width: size[1])
        let c = try classifier.classify(x0, imageIndex: 0)
        return json ? try imageAnswerJSON(path: file, names: names, c) : rankedLine(file: file, names: names, c, top: top)
    }
}

/// One image's answer as a `classify --json` line.
func imageAnswerJSON(path: String, names: [String], _ c: Classification) throws -> String {
    let encoder = JSONEncoder()
    encoder.keyEncodingStrategy = .convertToSnakeCase
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let answer = ImageAnswer(path: path, prediction: c.prediction, className: names[c.prediction], probabilities: c.probabilities,
                             meanErrors: c.meanErrors, calls: c.calls)
    return String(decoding: try encoder.encode(answer), as: UTF8.self)
}
