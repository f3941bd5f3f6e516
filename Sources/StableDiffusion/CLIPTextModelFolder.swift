import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

extension CLIPTextModel {
    public static let weightsName = "model.safetensors"

    /// `folder` itself when it has `config.json`, else `folder/text_encoder` (a diffusers pipeline).
    public static func directory(_ folder: URL) -> URL {
        FileManager.default.fileExists(atPath: folder.appendingPathComponent("config.json").path)
            ? folder : folder.appendingPathComponent("text_encoder")
    }

    /// Loads `config.json` and `model.safetensors` strictly: missing, unused or misshapen tensors
    /// are named. The `text_model.embeddings.position_ids` buffer (older transformers save it) is
    /// ignored, and keys without the `text_model.` prefix (transformers 5 saves them so) get it.
    /// `weightStorage` keeps Linear, Conv2d and Embedding weights as 16-bit (`WeightStorage`).
    public static func load(from folder: URL, weightStorage: WeightStorage = .float32) throws -> CLIPTextModel {
        let dir = directory(folder)
        let configURL = dir.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw ConfigError(file: folder.path, "no config.json here or in text_encoder/: not a CLIPTextModel folder")
        }
        let config = try CLIPTextConfig.load(configURL)
        let model = WeightStorage.$current.withValue(weightStorage) { CLIPTextModel(config: config) }
        let weightsURL = try DiffusersFolder.weightsURL(in: dir, name: weightsName)
        try model.load(from: try SafetensorsFile(url: weightsURL), key: normalizedKey)
        MemoryStatistics.releaseIdleBuffers()  // the random initial weights
        return model
    }

    /// Adds the `text_model.` prefix where missing; nil (skip) for the `position_ids` buffer.
    static func normalizedKey(_ key: String) -> String? {
        let full = key.hasPrefix("text_model.") ? key : "text_model." + key
        return full == "text_model.embeddings.position_ids" ? nil : full
    }
}
