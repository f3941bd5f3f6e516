/// How a tensor was made: its inputs, the backend that computed it, and the function that maps
/// the gradient of the output to gradients of the inputs (nil for inputs that need none).
public final class GradFunction {
    public let name: String
    public let inputs: [Tensor]
    /// The backend in effect when the op ran; `backward()` computes this node's gradients on it.
    public let backend: any ComputeBackend
    public let backward: (Tensor) -> [Tensor?]

    init(name: String, inputs: [Tensor], backend: any ComputeBackend, backward: @escaping (Tensor) -> [Tensor?]) {
        self.name = name
        self.inputs = inputs
        self.backend = backend
        self.backward = backward
    }
}

/// Recording control for reverse-mode autodiff.
///
/// Recording happens only when it is enabled (the default) and some input of an op requires
/// gradients. `Autograd.noGrad { ... }` records nothing inside its body, so inference keeps no
/// graph and memory stays flat. The setting is task- and thread-local.
public enum Autograd {
    @TaskLocal public static var isEnabled: Bool = true

    /// Runs `body` with recording off.
    public static func noGrad<R>(_ body: () throws -> R) rethrows -> R {
        try $isEnabled.withValue(false) { try body() }
    }

    /// Runs `body` with recording on (inside a `noGrad` block, say).
    public static func withGrad<R>(_ body: () throws -> R) rethrows -> R {
        try $isEnabled.withValue(true) { try body() }
    }

    /// Whether an op on `inputs` should record history.
    @inlinable public static func shouldRecord(_ inputs: [Tensor]) -> Bool {
        guard isEnabled else { return false }
        for t in inputs where t.requiresGrad { return true }
        return false
    }
}

extension Tensor {
    /// Marks `self` as made from `inputs` by `name` when recording applies; returns `self`.
    /// `backward` gets the gradient of `self` and returns one gradient per input, each of that
    /// input's shape, or nil where the input needs no gradient. A closure that needs the output
    /// must capture it `[unowned out]`: a strong capture is a reference cycle (output ->
    /// gradFunction -> closure -> output) that would keep a forward graph alive.
    @discardableResult
    public func recorded(_ name: String, _ inputs: [Tensor],
                         _ backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        if Autograd.shouldRecord(inputs) {
            requiresGrad = true
            gradFunction = GradFunction(name: name, inputs: inputs, backend: Engine.backend, backward: backward)
        }
        return self
    }

    /// Back-propagates from this tensor. Without `gradient` the tensor must hold one element and
    /// its gradient is 1. Gradients accumulate into `grad` of every leaf that requires them (call
    /// `zeroGrad` on parameters between steps). Backward functions run with recording off.
    ///
    /// Like PyTorch without `retain_graph`, the graph is released as backward walks it (each
    /// node drops its inputs once its gradients are computed), so activations are freed during
    /// backward; a second `backward()` through the same graph is not possible. Each node's
    /// gradients are computed by the backend that computed the node (`GradFunction.backend`),
    /// whichever backend is in effect where `backward()` is called.
    public func backward(_ gradient: Tensor? = nil) {
        let seed: Tensor
        if let gradient {
            precondition(gradient.shape == shape,
                         "backward: gradient shape \(gradient.shape) differs from tensor shape \(shape)")
            seed = gradient
        } else {
            precondition(count == 1, "backward: implicit gradient needs a one-element tensor, shape is \(shape)")
            seed = Tensor(shape: shape, repeating: 1)
        }
        guard requiresGrad else { return }

        // Topological order by iterative depth-first search (graphs can be deep).
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            let id = ObjectIdentifier(node)
            if visited.contains(id) { continue }
            visited.insert(id)
            stack.append((node, true))
            if let fn = node.gradFunction {
                for input in fn.inputs where input.requiresGrad && !visited.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
        }

        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): seed]
        let current = Engine.backend
        Autograd.noGrad {
            for node in order.reversed() {
                let id = ObjectIdentifier(node)
                guard let g = grads.removeValue(forKey: id) else { continue }
                guard let fn = node.gradFunction else {
                    // A leaf: accumulate.
                    node.grad = node.grad.map { $0 + g } ?? g.detached()
                    continue
                }
                let inputGrads = fn.backend === current ? fn.backward(g)
                    : Engine.withBackend(any: fn.backend) { fn.backward(g) }
                node.gradFunction = nil
                precondition(inputGrads.count == fn.inputs.count,
                             "backward of \(fn.name): \(inputGrads.count) gradients for \(fn.inputs.count) inputs")
                for (input, ig) in zip(fn.inputs, inputGrads) {
                    guard input.requiresGrad, let ig else { continue }
                    precondition(ig.shape == input.shape,
                                 "backward of \(fn.name): gradient shape \(ig.shape) for input of shape \(input.shape)")
                    let key = ObjectIdentifier(input)
                    if let existing = grads[key] { grads[key] = existing + ig } else { grads[key] = ig }
                }
            }
        }
    }

    /// Clears the accumulated gradient.
    public func zeroGrad() { grad = nil }
}

/// Evaluates `f` at `inputs` with gradients recorded and returns its scalar value and the gradient
/// with respect to each input. The inputs themselves are not modified.
public func valueAndGradient(at inputs: [Tensor], _ f: ([Tensor]) -> Tensor) -> (value: Tensor, gradients: [Tensor]) {
    let leaves = inputs.map { Tensor(shape: $0.shape, storage: $0.storage, requiresGrad: true) }
    let value = Autograd.withGrad { f(leaves) }
    value.backward()
    let grads = leaves.map { $0.grad ?? Tensor.zeros($0.shape) }
    return (value.detached(), grads)
}
