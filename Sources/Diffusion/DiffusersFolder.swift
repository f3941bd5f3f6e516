import Foundation
import NeuralNetworks
import TensorEngine

/// Reading and writing diffusers' model folders: `config.json`, `diffusion_pytorch_model.safetensors`
/// and, for a pipeline-style folder, `scheduler/scheduler_config.json`.
public enum DiffusersFolder {
    public static let configName = "config.json"
    public static let weightsName = "diffusion_pytorch_model.safetensors"
    public static let schedulerPath = "scheduler/scheduler_config.json"

    /// The weights variant to read, as diffusers' `variant=` (`fp16`: `NAME.fp16.safetensors`
    /// instead of `NAME.safetensors`); nil for the plain files. Task-local, so a front end sets
    /// it once around a command (`$variant.withValue("fp16") { ... }`).
    @TaskLocal public static var variant: String?

    /// The PyTorch pickle each safetensors weights file of diffusers and transformers replaces.
    static func pickleName(_ name: String) -> String {
        name == weightsName ? "diffusion_pytorch_model.bin" : name.replacingOccurrences(of: "model.safetensors", with: "pytorch_model.bin")
    }

    /// The weights file `name` (`diffusion_pytorch_model.safetensors`, `model.safetensors`) in
    /// `dir`, as `variant` says (`diffusion_pytorch_model.fp16.safetensors` for `fp16`). A folder
    /// holding only other variants, or only PyTorch's `.bin` pickles (which are not read: loading
    /// a pickle runs code), gets an error naming what is there and what to do.
    public static func weightsURL(in dir: URL, name: String) throws -> URL {
        let stem = String(name.dropLast(".safetensors".count))
        let wanted = variant.map { "\(stem).\($0).safetensors" } ?? name
        let url = dir.appendingPathComponent(wanted)
        let fm = FileManager.default
        if fm.fileExists(atPath: url.path) { return url }
        let present = ((try? fm.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
        let variants = present.filter { $0.hasPrefix(stem + ".") && $0.hasSuffix(".safetensors") && $0 != name }
            .map { String($0.dropFirst(stem.count + 1).dropLast(".safetensors".count)) }
        if variant == nil, !variants.isEmpty {
            throw SettingError("\(url.path): missing; the folder has the \(Setting.weightVariant) \(variants.joined(separator: ", ")) "
                + "(\(variants.map { "\(stem).\($0).safetensors" }.joined(separator: ", "))): choose it with \(Setting.weightVariant) \(variants[0])")
        }
        if let variant, fm.fileExists(atPath: dir.appendingPathComponent(name).path) || !variants.isEmpty {
            let others = (fm.fileExists(atPath: dir.appendingPathComponent(name).path) ? ["none (\(name))"] : []) + variants
            throw SettingError("\(url.path): missing: no \(Setting.weightVariant) \(variant) here; the folder has \(others.joined(separator: ", "))")
        }
        let pickle = pickleName(name)
        let pickles = [pickle, variant.map { pickle.replacingOccurrences(of: ".bin", with: ".\($0).bin") }].compactMap { $0 }
        if let found = pickles.first(where: { fm.fileExists(atPath: dir.appendingPathComponent($0).path) }) {
            let bin = dir.appendingPathComponent(found).path, out = url.path
            throw SettingError("\(dir.appendingPathComponent(found).path): PyTorch pickle weights are not read (loading a pickle runs code); "
                + "convert them to \(wanted) once, e.g. with Python, torch and safetensors: python -c \"import torch; "
                + "from safetensors.torch import save_file; sd = torch.load('\(bin)', map_location='cpu'); "
                + "save_file({k: v.contiguous().clone() for k, v in sd.items()}, '\(out)', metadata={'format': 'pt'})\" "
                + "(or load the folder in diffusers and save_pretrained it: safetensors is its default)")
        }
        return url  // missing: the safetensors reader names it
    }

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
        try model.load(from: try SafetensorsFile(url: try weightsURL(in: dir, name: weightsName)))
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

extension Setting {
    /// Which weights files of a diffusers folder are read (`DiffusersFolder.variant`).
    public static let weightVariant = Setting("variant")
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
