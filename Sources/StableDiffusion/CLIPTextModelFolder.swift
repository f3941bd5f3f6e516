import Diffusion
import Foundation
import NeuralNetworks

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
    public static func load(from folder: URL) throws -> CLIPTextModel {
        let dir = directory(folder)
        let configURL = dir.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw ConfigError(file: folder.path, "no config.json here or in text_encoder/: not a CLIPTextModel folder")
        }
        let model = CLIPTextModel(config: try CLIPTextConfig.load(configURL))
        let weightsURL = dir.appendingPathComponent(weightsName)
        let file = try SafetensorsFile(url: weightsURL)
        try model.load(normalizedKeys(try file.tensors()), source: weightsURL.path)
        return model
    }

    /// Drops `position_ids` buffers and adds the `text_model.` prefix where missing.
    static func normalizedKeys(_ tensors: [String: Tensor]) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (key, t) in tensors {
            let full = key.hasPrefix("text_model.") ? key : "text_model." + key
            if full == "text_model.embeddings.position_ids" { continue }
            out[full] = t
        }
        return out
    }
}
