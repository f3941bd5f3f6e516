import Foundation
import NeuralNetworks
import TensorEngine

/// Reading and writing diffusers' model folders: `config.json`, `diffusion_pytorch_model.safetensors`
/// and, for a pipeline-style folder, `scheduler/scheduler_config.json`.
public enum DiffusersFolder {
    public static let configName = "config.json"
    public static let weightsName = "diffusion_pytorch_model.safetensors"
    public static let schedulerPath = "scheduler/scheduler_config.json"

    /// A U-Net from `folder` or its `unet/`: `config` reads config.json, `build` makes the network
    /// (its weights stored as `weightStorage`), then diffusion_pytorch_model.safetensors loads
    /// strictly (missing, unused or misshapen tensors are named). `className` names the expected
    /// kind in the error for a folder without config.json.
    public static func loadUNet<Config, Model: Module>(_ folder: URL, className: String, weightStorage: WeightStorage,
                                                       config: (URL) throws -> Config, build: (Config) -> Model) throws -> Model {
        let dir = unetDirectory(folder)
        let configURL = dir.appendingPathComponent(configName)
        guard FileManager.default.fileExists(atPath: configURL.path) else {
            throw ConfigError(file: folder.path, "no \(configName) here or in unet/: not a diffusers \(className) folder")
        }
        let parsed = try config(configURL)
        let model = WeightStorage.$current.withValue(weightStorage) { build(parsed) }
        try model.load(from: try SafetensorsFile(url: dir.appendingPathComponent(weightsName)))
        MemoryStatistics.releaseIdleBuffers()  // the random initial weights
        return model
    }

    /// Where a UNet lives in `folder`: the folder itself, or its `unet/` subfolder (pipeline layout).
    public static func unetDirectory(_ folder: URL) -> URL {
        let fm = FileManager.default
        if fm.fileExists(atPath: folder.appendingPathComponent(configName).path) { return folder }
        return folder.appendingPathComponent("unet")
    }
}

extension UNet2DModel {
    /// Loads a diffusers `UNet2DModel` folder (or a pipeline folder with `unet/`). Every key and
    /// shape is checked: missing, unused or misshapen tensors are named in the error.
    /// `weightStorage` keeps Linear, Conv2d and Embedding weights as 16-bit (`WeightStorage`).
    public static func load(from folder: URL, weightStorage: WeightStorage = .float32) throws -> UNet2DModel {
        try DiffusersFolder.loadUNet(folder, className: "UNet2DModel", weightStorage: weightStorage,
                                     config: UNet2DConfig.load, build: { UNet2DModel(config: $0) })
    }

    /// Writes `config.json` and `diffusion_pytorch_model.safetensors` (F32) into `folder`, which
    /// diffusers' `UNet2DModel.from_pretrained` loads.
    public func save(to folder: URL, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try config.write(to: folder.appendingPathComponent(DiffusersFolder.configName))
        var meta = metadata
        meta["format"] = "pt"
        try Safetensors.write(stateDict(), metadata: meta, to: folder.appendingPathComponent(DiffusersFolder.weightsName))
    }
}

extension UNet2DModel {
    /// A model folder with its noise schedule: the U-Net (`load(from:)`) and
    /// `scheduler/scheduler_config.json`, which must exist (classifying needs the schedule the
    /// model was trained with).
    public static func loadWithSchedule(from folder: URL) throws -> (model: UNet2DModel, schedule: NoiseSchedule) {
        let model = try UNet2DModel.load(from: folder)
        let schedulerURL = folder.appendingPathComponent(DiffusersFolder.schedulerPath)
        guard FileManager.default.fileExists(atPath: schedulerURL.path) else {
            throw ConfigError(file: schedulerURL.path, "missing (the model's scheduler config is needed to classify with it)")
        }
        return (model, NoiseSchedule(try SchedulerConfig.load(schedulerURL)))
    }
}
