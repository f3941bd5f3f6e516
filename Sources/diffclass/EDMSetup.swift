import Diffusion
import DiffusionClassifier
import EDM
import Foundation

/// EDM model folders (`config.json` with a "precond" key, `model.safetensors`) in `eval`,
/// `classify` and `robust`: the denoiser scored over a grid of noise levels (`--sigmas`, RDC's
/// grid by default) with RDC's weight (`--sigma-density`).
enum EDMSetup {
    static let usage = """
    EDM model folders (config.json with "precond"; tools/convert_edm.py writes them):
      [--sigmas A:B:N] (the noise levels linspace(A, B, N+1) minus the last; default 1e-4:3:1000, RDC's code;
        its demos use 1e-4:3:125) [--sigma-density paper|code] (RDC's weight: the paper's log-normal density
        or the public code's expression; default paper). Without method flags every level is scored (RDC's loss).
    """

    /// Whether `path` is an EDM model folder (its config.json names a preconditioning).
    static func isEDMFolder(_ path: String) -> Bool {
        let url = URL(fileURLWithPath: path).appendingPathComponent(EDMModel.configName)
        guard let data = try? Data(contentsOf: url),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else { return false }
        return object["precond"] != nil
    }

    /// The grid of `--sigmas` (RDC's by default).
    static func grid(_ text: String?) throws -> SigmaGrid {
        try text.map { try SigmaGrid(parsing: $0) } ?? SigmaGrid.rdc
    }

    /// `--sigma-density`, paper by default.
    static func density(_ text: String?) throws -> SigmaDensity {
        guard let text else { return .paper }
        guard let d = SigmaDensity(rawValue: text) else { throw UsageError("--sigma-density: '\(text)' is not paper or code") }
        return d
    }

    /// Loads the folder as a classifier model over `grid`, its classes 0..<classes (all label
    /// dimensions when nil); the unconditional model is the zero label vector.
    static func load(_ path: String, grid: SigmaGrid, classes: Int? = nil) throws -> (edm: EDMModel, model: ClassifierModel) {
        let edm = try EDMModel.load(from: URL(fileURLWithPath: path))
        let k = classes ?? edm.labelDim
        guard edm.labelDim >= 2 else {
            throw UsageError("\(path): the EDM model has label_dim \(edm.labelDim); classifying needs a class-conditional model")
        }
        guard k <= edm.labelDim else { throw UsageError("\(path): the EDM model has \(edm.labelDim) classes, \(k) are needed") }
        let predictor = EDMNoisePredictor(model: edm, grid: grid)
        let model = ClassifierModel(predictor: predictor, schedule: predictor.schedule, conditions: Array(0..<k),
                                    unconditional: predictor.unconditional, encoder: PixelSpace(),
                                    summary: "an EDM \(edm.config.modelType) with \(edm.labelDim) classes", denoiser: predictor)
        return (edm, model)
    }
}
