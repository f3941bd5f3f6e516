import Foundation
import Diffusion
import NeuralNetworks

extension ImageDataset: TrainingData {
    public func batch(_ indices: [Int]) -> (images: Tensor, labels: Tensor) {
        (images(indices), labelTensor(indices))
    }
}

/// Resolves the data flags shared by commands: `--dataset fashion-mnist` (Debian's copy) or
/// `--data DIR` (an MNIST-format folder, or a folder of class subfolders of PNG/JPEG images).
public enum DatasetLocator {
    public static func load(dataset: String?, data: String?, split: ImageDataset.Split, imageSize: Int = 28,
                            channels: Int = 1) throws -> ImageDataset {
        switch (dataset, data) {
        case (nil, nil): throw DatasetError(file: "--dataset/--data", "give --dataset fashion-mnist or --data DIR")
        case (.some, .some): throw DatasetError(file: "--dataset/--data", "give only one of --dataset and --data")
        case (let name?, nil):
            guard name == "fashion-mnist" else {
                throw DatasetError(file: "--dataset", "unknown dataset '\(name)' (known: fashion-mnist; use --data DIR for others)")
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
