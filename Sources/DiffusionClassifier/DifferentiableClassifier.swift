import Diffusion
import NeuralNetworks
import TensorEngine

/// A classifier whose logits are differentiable with respect to its input image, so attacks can
/// take d loss / d x exactly through the whole pipeline (RDC's likelihood maximization included).
///
/// Inputs are images [N, C, H, W] with pixels in [0, 1] (the units published attack budgets use,
/// e.g. l_inf 8/255); a conforming type maps them to its model's range itself. Calls must record
/// autodiff history (do not wrap them in `Autograd.noGrad`).
public protocol DifferentiableClassifier: AnyObject {
    /// Number of classes K.
    var classCount: Int { get }
    /// Logits [N, K]. `randomness` seeds every random draw inside (noise, timesteps): the same
    /// value gives the same deterministic function, so an attacker can differentiate exactly the
    /// noise that is scored; EOT averages over different values.
    func logits(_ x: Tensor, randomness: UInt64) -> Tensor
    /// Whether `logits` depends on `randomness` at all (EOT is pointless otherwise).
    var isRandomized: Bool { get }
}
