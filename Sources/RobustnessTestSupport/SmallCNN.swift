import DiffusionClassifier
import NeuralNetworks
import Robustness
import TensorEngine

// Test scaffolding for the attack tests: a small discriminative classifier, its training and
// its accuracy. Not part of the library.

/// A small discriminative CNN for attack tests: conv 3x3 (C -> c1) + ReLU + avgPool 2,
/// conv 3x3 (c1 -> c2) + ReLU + avgPool 2, linear to K. Inputs [N, C, H, W] in [0, 1]
/// (mapped to [-1, 1] inside); H and W divisible by 4. Deterministic (`isRandomized` false).
public final class SmallCNN: Module, DifferentiableClassifier {
    public let conv1: Conv2d
    public let conv2: Conv2d
    public let head: Linear
    public let classCount: Int
    public var isRandomized: Bool { false }

    public init(channels: Int = 1, height: Int = 28, width: Int = 28, classCount: Int = 10,
                widths: (Int, Int) = (16, 32), generator: inout RandomGenerator) {
        precondition(height % 4 == 0 && width % 4 == 0, "SmallCNN: H and W must be divisible by 4")
        self.classCount = classCount
        let c1 = Conv2d(channels, widths.0, kernelSize: 3, padding: 1, generator: &generator)
        let c2 = Conv2d(widths.0, widths.1, kernelSize: 3, padding: 1, generator: &generator)
        let l = Linear(widths.1 * (height / 4) * (width / 4), classCount, generator: &generator)
        conv1 = c1; conv2 = c2; head = l
        super.init()
        child("conv1", c1); child("conv2", c2); child("head", l)
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = conv1(x * 2 - 1).relu().avgPool2d(kernel: 2)
        h = conv2(h).relu().avgPool2d(kernel: 2)
        return head(h.flattened(from: 1))
    }

    public func logits(_ x: Tensor, randomness: UInt64) -> Tensor { self(x) }
}

/// Mean cross-entropy of logits [N, K] against `labels` (logSoftmax from the engine).
public func crossEntropy(_ logits: Tensor, labels: [Int]) -> Tensor {
    AttackLoss.crossEntropy.perImage(logits, labels: labels).mean()
}

/// Trains `model` (any module mapping [N, C, H, W] in [0, 1] to logits) with cross-entropy and
/// AdamW for `epochs` passes over `images` in shuffled minibatches. Returns the mean loss of
/// each epoch.
@discardableResult
public func trainClassifier(_ model: Module, forward: (Tensor) -> Tensor, images: Tensor, labels: [Int],
                            epochs: Int, batchSize: Int = 64, learningRate: Float = 2e-3,
                            weightDecay: Float = 1e-4, generator: inout RandomGenerator) -> [Float] {
    let optimizer = AdamW(parameters: model.parameters, learningRate: learningRate, weightDecay: weightDecay)
    let n = labels.count
    let shape = Array(images.shape.dropFirst())
    let size = shape.reduce(1, *)
    let x = images.detached().scalars
    var history: [Float] = []
    model.train()
    for _ in 0..<epochs {
        let order = generator.permutation(n)
        var total: Float = 0, batches = 0
        for start in stride(from: 0, to: n, by: batchSize) {
            let idx = Array(order[start..<min(start + batchSize, n)])
            let batch = Tensor(shape: [idx.count] + shape, rows(x, idx, size: size))
            model.zeroGrad()
            let loss = Autograd.withGrad { crossEntropy(forward(batch), labels: idx.map { labels[$0] }) }
            loss.backward()
            optimizer.update()
            total += loss.item; batches += 1
        }
        history.append(total / Float(max(batches, 1)))
    }
    model.eval()
    return history
}

/// Accuracy of `classifier` at `randomness` on `images` with `labels`, in batches.
public func accuracy(of classifier: DifferentiableClassifier, images: Tensor, labels: [Int],
                     randomness: UInt64 = 0, batchSize: Int = 256) -> Double {
    let shape = Array(images.shape.dropFirst())
    let size = shape.reduce(1, *)
    let x = images.detached().scalars
    var correct = 0
    for start in stride(from: 0, to: labels.count, by: batchSize) {
        let idx = Array(start..<min(start + batchSize, labels.count))
        let z = Autograd.noGrad {
            classifier.logits(Tensor(shape: [idx.count] + shape, rows(x, idx, size: size)), randomness: randomness).scalars
        }
        for (j, p) in firstArgmax(z, classCount: classifier.classCount).enumerated() where p == labels[idx[j]] { correct += 1 }
    }
    return Double(correct) / Double(max(labels.count, 1))
}

/// The rows `indices` (each `size` values) of `x`, concatenated.
func rows(_ x: [Float], _ indices: [Int], size: Int) -> [Float] {
    var out = [Float]()
    out.reserveCapacity(indices.count * size)
    for r in indices { out.append(contentsOf: x[(r * size)..<((r + 1) * size)]) }
    return out
}

/// argmax of each row of logits [N, K], the first maximum winning (as torch.max and the attacks).
public func firstArgmax(_ z: [Float], classCount k: Int) -> [Int] {
    stride(from: 0, to: z.count, by: k).map { s in
        var best = 0
        for j in 1..<k where z[s + j] > z[s + best] { best = j }
        return best
    }
}
