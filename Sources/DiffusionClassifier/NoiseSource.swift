import Foundation
import NeuralNetworks
import TensorEngine

/// Where the k-th noise draw eps_k of an image comes from. Draw k goes with the k-th new
/// (timestep, noise) probe of that image and is shared by every class scored on that probe
/// (the public code's `noise_idxs`: one eps per timestep, numbered in evaluation order).
public protocol NoiseSource {
    /// eps_k, shaped like the image ([1, C, H, W]).
    func noise(_ k: Int) throws -> Tensor
}

/// Seeded noise for image `index`: the generator `RandomGenerator(seed: seed).derived(index)`
/// (stream = a hash of the image index), and draw k is `Tensor.randn` at block offset
/// k * ceil(C H W / 4) of it, i.e. exactly the k-th of consecutive draws. So eps depends only on
/// (seed, image index, k): not on evaluation order, batching, sharding or thread count.
/// (The public code draws unseeded `torch.randn`; runs there are not reproducible.)
public struct SeededNoise: NoiseSource {
    public let generator: RandomGenerator
    public let shape: [Int]

    public init(seed: UInt64, imageIndex: Int, shape: [Int]) {
        generator = SeededNoise.imageGenerator(seed: seed, imageIndex: imageIndex)
        self.shape = shape
    }

    /// Draws from `generator` (draw k at block offset k * ceil(C H W / 4)).
    public init(generator: RandomGenerator, shape: [Int]) {
        self.generator = generator
        self.shape = shape
    }

    /// Independent noise for candidate `classIndex` of image `imageIndex`: the image generator's
    /// `derived(2).derived(classIndex)` (timestep draws use `derived(1)`), so eps depends only on
    /// (seed, image, class, probe).
    public static func independent(seed: UInt64, imageIndex: Int, classIndex: Int, shape: [Int]) -> SeededNoise {
        SeededNoise(generator: imageGenerator(seed: seed, imageIndex: imageIndex).derived(2).derived(UInt64(classIndex)), shape: shape)
    }

    /// The per-image generator; timestep draws use its `derived(1)`.
    public static func imageGenerator(seed: UInt64, imageIndex: Int) -> RandomGenerator {
        RandomGenerator(seed: seed).derived(UInt64(imageIndex))
    }

    public func noise(_ k: Int) throws -> Tensor {
        var g = generator
        let blocks = (Tensor.elementCount(shape) + 3) / 4
        g.skip(blocks: UInt64(k) * UInt64(blocks))
        return Tensor.randn(shape, generator: &g)
    }
}

/// Noise read from a safetensors file (`--noise FILE`): tensor `eps` [N, C, H, W], row k used
/// for draw k, the same rows for every image (the public code's intended `--noise_path`).
public struct FileNoise: NoiseSource {
    public let eps: Tensor
    public let path: String

    public init(url: URL) throws {
        let file = try SafetensorsFile(url: url)
        guard file.contains("eps") else {
            throw ClassifierError("\(url.path): no tensor 'eps' (has \(file.names.joined(separator: ", ")))")
        }
        try file.checkFinite("eps")  // refused before any run file is written
        self.init(eps: try file.tensor("eps"), path: url.path)
        guard eps.rank == 4 else { throw ClassifierError("\(url.path): 'eps' has shape \(eps.shape), expected [N, C, H, W]") }
    }

    public init(eps: Tensor, path: String) {
        self.eps = eps
        self.path = path
    }

    /// Rejects a file whose rows do not have the image's shape.
    public func check(imageShape: [Int]) throws {
        guard eps.rank == 4, Array(eps.shape.dropFirst()) == Array(imageShape.dropFirst()) else {
            throw ClassifierError("\(path): 'eps' has shape \(eps.shape), images are \(Array(imageShape.dropFirst()))")
        }
    }

    public func noise(_ k: Int) throws -> Tensor {
        guard k < eps.shape[0] else {
            throw ClassifierError("\(path): 'eps' has \(eps.shape[0]) draws, but draw \(k + 1) is needed")
        }
        return eps.sliced(axis: 0, k..<(k + 1))
    }
}
