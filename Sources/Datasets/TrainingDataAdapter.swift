import Diffusion
import Foundation
import NeuralNetworks
import TensorEngine

extension ImageDataset: TrainingData {
    public func batch(_ indices: [Int]) -> (images: Tensor, labels: Tensor) {
        (images(indices), labelTensor(indices))
    }
}

/// Resolves the data a run names: a dataset by name (`fashion-mnist`, Debian's copy) or a data
/// folder (MNIST-format files, or class subfolders of PNG/JPEG images). Errors name
/// `Setting.dataset` and `Setting.data`.
public enum DatasetLocator {
    public static func load(dataset: String?, data: String?, split: ImageDataset.Split, imageSize: Int = 28,
                            channels: Int = 1) throws -> ImageDataset {
        switch (dataset, data) {
        case (nil, nil): throw SettingError("\(Setting.dataset)/\(Setting.data): give \(Setting.dataset) fashion-mnist or \(Setting.data) DIR")
        case (.some, .some): throw SettingError("\(Setting.dataset)/\(Setting.data): give only one of \(Setting.dataset) and \(Setting.data)")
        case (let name?, nil):
            guard name == "fashion-mnist" else {
                throw SettingError(.dataset, "unknown dataset '\(name)' (known: fashion-mnist; use \(Setting.data) DIR for others)")
            }
            return try FashionMNIST.load(split: split)
        case (nil, let path?):
            let url = URL(fileURLWithPath: path)
            let fm = FileManager.default
            let prefix = split == .train ? "train" : "t10k"
            if fm.fileExists(atPath: url.appendingPathComponent("\(prefix)-images-idx3-ubyte.gz").path)
                || fm.fileExists(atPath: url.appendingPathComponent("\(prefix)-images-idx3-ubyte").path) {
                let isFashion = url.standardizedFileURL.path == FashionMNIST.debianDirectory.path
                return try ImageDataset.mnistFormat(directory: url, split: split,
                                                    classNames: isFashion ? FashionMNIST.classNames : nil)
            }
            return try ImageFolder.load(url, size: imageSize, channels: channels)
        }
    }
}

extension ImageDataset {
    /// Refuses images the model does not take (channels, and height and width when the config
    /// gives `sample_size`); the message names `model`.
    public func checkFits(_ config: UNet2DConfig, model: String) throws {
        guard channels == config.inChannels, config.sampleSize.map({ $0 == [height, width] }) ?? true else {
            throw DatasetError(file: model, "the model takes \(config.inChannels)x\(config.sampleSize ?? []) images, \(name) has \(channels)x\(height)x\(width)")
        }
        // The last class embedding is the null class: never a candidate.
        if let embeds = config.numClassEmbeds, embeds >= 2, classNames.count >= embeds {
            throw DatasetError(file: model, "the model has \(embeds - 1) classes (class embedding \(embeds - 1) is the null class), \(name) has \(classNames.count)")
        }
    }
}
