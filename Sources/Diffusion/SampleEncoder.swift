import TensorEngine

/// How images become a diffusion model's clean samples x0: the identity up to scaling for a
/// pixel-space model, a VAE encoder for a latent one (Stable Diffusion, DiT). Classifiers that
/// are differentiated with respect to the image (attacks, RDC's likelihood maximization) call
/// it with autodiff recording, so a gradient reaches the pixels through the encoder.
public protocol SampleEncoder {
    /// x0 for images [N, C, H, W] with pixels in [0, 1].
    func encode(pixels: Tensor) -> Tensor
    /// The shape of `encode`'s result for images of shape `pixels`.
    func sampleShape(pixels: [Int]) -> [Int]
}

/// A pixel-space model trained on images in [-1, 1]: x0 = 2x - 1.
public struct PixelSpace: SampleEncoder {
    public init() {}
    public func encode(pixels x: Tensor) -> Tensor { x * 2 - 1 }
    public func sampleShape(pixels: [Int]) -> [Int] { pixels }
}
