import Diffusion
import TensorEngine

/// A text-conditioned U-Net seen as a class-conditional one: `predict`'s `conditions` are class
/// ids [N] (as Float, as `Classifier` / `ImageScorer` pass them), and class k is conditioned on
/// `embeddings[k]` ([K, S, D], e.g. `StableDiffusionPipeline.promptEmbeddings`). So the classifier,
/// its strategies and run folders work unchanged for zero-shot Stable Diffusion: candidate k's
/// condition is prompt k. No classifier-free guidance (the public code uses none).
public final class PromptConditionedUNet: ConditionalNoisePredictor {
    public let unet: UNet2DConditionModel
    /// [K, S, D]: one encoder-hidden-state sequence per class.
    public let embeddings: Tensor

    public init(unet: UNet2DConditionModel, embeddings: Tensor) {
        precondition(embeddings.rank == 3, "PromptConditionedUNet: embeddings must be [K, S, D], got \(embeddings.shape)")
        self.unet = unet
        self.embeddings = embeddings
    }

    public var classCount: Int { embeddings.shape[0] }

    /// The rows of `embeddings` for class ids `ids`, [N, S, D].
    public func encoderStates(classIDs ids: [Int]) -> Tensor {
        for k in ids {
            precondition(k >= 0 && k < classCount, "PromptConditionedUNet: class \(k) outside 0..<\(classCount)")
        }
        return Autograd.noGrad { embeddings.gatherRows(ids) }
    }

    public func predict(_ sample: Tensor, timesteps: [Float], conditions: Tensor?) -> Tensor {
        guard let conditions else { preconditionFailure("PromptConditionedUNet: class ids are required") }
        let ids = conditions.scalars.map { Int($0) }
        return unet(sample, timesteps: timesteps, encoderHiddenStates: encoderStates(classIDs: ids))
    }
}
