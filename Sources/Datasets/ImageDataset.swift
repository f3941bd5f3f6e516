import Foundation
import Images
import NeuralNetworks
import TensorEngine

/// Labelled images held as bytes ([N, H, W, C] interleaved) with class names; batches come out
/// as NCHW Float tensors in [-1, 1] (x / 127.5 - 1), the range diffusion models are trained on.
public struct ImageDataset {
    public let name: String
    public let height: Int, width: Int, channels: Int
    public let pixels: [UInt8]
    public let labels: [Int]
    public let classNames: [String]
    /// For an image folder: each image's file, relative to the folder ("Pullover/0001.png");
    /// nil for IDX datasets.
    public var paths: [String]? = nil
    public var count: Int { labels.count }

    public init(name: String, height: Int, width: Int, channels: Int, pixels: [UInt8], labels: [Int], classNames: [String]) {
        precondition(pixels.count == labels.count * height * width * channels, "ImageDataset: pixel count does not match")
        self.name = name; self.height = height; self.width = width; self.channels = channels
        self.pixels = pixels; self.labels = labels; self.classNames = classNames
    }

    /// Images `indices` as [n, C, H, W] in [-1, 1]: the bytes of those images as a tensor, then
    /// HWC to CHW, x / 127.5 - 1 (the exact quotient, as one Float division per pixel).
    public func images(_ indices: [Int]) -> Tensor {
        let per = height * width * channels
        var bytes: [UInt8] = []
        bytes.reserveCapacity(indices.count * per)
        for i in indices {
            precondition(i >= 0 && i < count, "ImageDataset.images: index \(i) outside 0..<\(count)")
            bytes.append(contentsOf: pixels[(i * per)..<((i + 1) * per)])
        }
        return Autograd.noGrad {
            let hwc = bytes.withUnsafeBytes { Tensor(shape: [indices.count, height, width, channels], bytes: $0, format: .uint8) }
            return hwc.permuted([0, 3, 1, 2]) / Tensor(127.5) - 1
        }
    }

    /// Labels `indices` as a Float tensor [n] of class ids.
    public func labelTensor(_ indices: [Int]) -> Tensor {
        Tensor(shape: [indices.count], indices.map { Float(labels[$0]) })
    }

    /// The first `n` items (or all).
    public func prefix(_ n: Int) -> ImageDataset {
        let k = Swift.min(n, count), per = height * width * channels
        var d = ImageDataset(name: name, height: height, width: width, channels: channels, pixels: Array(pixels[0..<(k * per)]),
                             labels: Array(labels[0..<k]), classNames: classNames)
        d.paths = paths.map { Array($0[0..<k]) }
        return d
    }

    /// Reads an MNIST-format folder: `{train,t10k}-images-idx3-ubyte[.gz]` and the matching labels.
    public static func mnistFormat(directory: URL, split: Split, classNames: [String]? = nil, name: String = "mnist-format") throws -> ImageDataset {
        let prefix = split == .train ? "train" : "t10k"
        func find(_ base: String) throws -> URL {
            for candidate in [base + ".gz", base] {
                let u = directory.appendingPathComponent(candidate)
                if FileManager.default.fileExists(atPath: u.path) { return u }
            }
            throw DatasetError(file: directory.path, "no \(base)[.gz] in this folder (expected MNIST-format IDX files)")
        }
        let imagesURL = try find("\(prefix)-images-idx3-ubyte"), labelsURL = try find("\(prefix)-labels-idx1-ubyte")
        let images = try IDX.read(imagesURL), labels = try IDX.read(labelsURL)
        guard images.dimensions.count == 3 else {
            throw DatasetError(file: imagesURL.path, "expected 3 dimensions [N, H, W], found \(images.dimensions)")
        }
        guard labels.dimensions.count == 1, labels.dimensions[0] == images.dimensions[0] else {
            throw DatasetError(file: labelsURL.path, "expected \(images.dimensions[0]) labels, found dimensions \(labels.dimensions)")
        }
        let ids = labels.bytes.map(Int.init)
        let names = classNames ?? (0...(ids.max() ?? 0)).map(String.init)
        if let bad = ids.first(where: { $0 >= names.count }) {
            throw DatasetError(file: labelsURL.path, "label \(bad) outside the \(names.count) classes")
        }
        return ImageDataset(name: name, height: images.dimensions[1], width: images.dimensions[2], channels: 1,
                            pixels: images.bytes, labels: ids, classNames: names)
    }

    public enum Split: String { case train, test }
}

/// Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test images, 28x28 gray.
public enum FashionMNIST {
    public static let classNames = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    /// Where Debian's `dataset-fashion-mnist` package installs it.
    public static let debianDirectory = URL(fileURLWithPath: "/usr/share/datasets/fashion-mnist")

    public static func load(split: ImageDataset.Split, directory: URL? = nil) throws -> ImageDataset {
        let dir = directory ?? debianDirectory
        guard FileManager.default.fileExists(atPath: dir.path) else {
            throw DatasetError(file: dir.path, "Fashion-MNIST not found; install Debian's package: apt-get install dataset-fashion-mnist (or give a data folder)")
        }
        return try ImageDataset.mnistFormat(directory: dir, split: split, classNames: classNames, name: "fashion-mnist")
    }
}

/// A folder with one subfolder per class (sorted by name) holding PNG or JPEG files, each
/// decoded and resized (bilinear) to `size` x `size`. Its labels are the subfolders' indices in
/// name order and its class names the subfolder names: which of a model's classes each subfolder
/// holds is decided by a `ClassFolderMapping`, never by that order alone.
public enum ImageFolder {
    public static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    public static func load(_ root: URL, size: Int, channels: Int) throws -> ImageDataset {
        let listing = try files(root)
        var pixels: [UInt8] = []
        for file in listing.files {
            pixels += try Image.read(file, channels: channels).resizedBilinear(width: size, height: size).pixels
        }
        var d = ImageDataset(name: root.lastPathComponent, height: size, width: size, channels: channels,
                             pixels: pixels, labels: listing.labels, classNames: listing.classNames)
        d.paths = listing.files.map { relativePath($0, root: root) }
        return d
    }

    /// `file`'s path below `root` ("Pullover/0001.png").
    public static func relativePath(_ file: URL, root: URL) -> String {
        let base = root.standardizedFileURL.path, path = file.standardizedFileURL.path
        return path.hasPrefix(base + "/") ? String(path.dropFirst(base.count + 1)) : path
    }

    /// The image files of a folder with one subfolder per class (sorted by name; label = the
    /// subfolder's index), without decoding them.
    public static func files(_ root: URL) throws -> (files: [URL], labels: [Int], classNames: [String]) {
        let fm = FileManager.default
        let classes: [String]
        do {
            classes = try fm.contentsOfDirectory(atPath: root.path).filter { name in
                var isDir: ObjCBool = false
                return !name.hasPrefix(".") && fm.fileExists(atPath: root.appendingPathComponent(name).path, isDirectory: &isDir) && isDir.boolValue
            }.sorted()
        } catch { throw DatasetError(file: root.path, "cannot list folder: \(error.localizedDescription)") }
        guard !classes.isEmpty else { throw DatasetError(file: root.path, "no class subfolders (expected one folder per class)") }
        var urls: [URL] = [], labels: [Int] = []
        for (k, cls) in classes.enumerated() {
            let dir = root.appendingPathComponent(cls)
            let files = (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
            for f in files.sorted() where extensions.contains((f as NSString).pathExtension.lowercased()) {
                urls.append(dir.appendingPathComponent(f))
                labels.append(k)
            }
        }
        guard !labels.isEmpty else { throw DatasetError(file: root.path, "no PNG or JPEG files in the class folders") }
        return (urls, labels, classes)
    }
}
