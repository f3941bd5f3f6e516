/// How a tensor was made: its inputs, the backend that computed it, and the function that maps
/// the gradient of the output to gradients of the inputs (nil for inputs that need none).
public final class GradFunction {
    public let name: String
    public let inputs: [Tensor]
    /// The backend in effect when the op ran; `backward()` computes this node's gradients on it.
    public let backend: any ComputeBackend
    public let backward: (Tensor) -> [Tensor?]
    /// The backward built from recorded ops, run with recording on by `backward(createGraph: true)`
    /// and `gradient(of:wrt:createGraph: true)` so that the gradients it returns carry their own
    /// history (second derivatives). Nil for an op without one: a recording backward refuses it
    /// with `AutogradError.noSecondDerivative` instead of treating it as zero.
    public let differentiableBackward: ((Tensor) -> [Tensor?])?

    init(name: String, inputs: [Tensor], backend: any ComputeBackend, backward: @escaping (Tensor) -> [Tensor?],
         differentiableBackward: ((Tensor) -> [Tensor?])? = nil) {
        self.name = name
        self.inputs = inputs
        self.backend = backend
        self.backward = backward
        self.differentiableBackward = differentiableBackward
    }
}

/// Errors of recording (create-graph) backward passes.
public enum AutogradError: Error, Equatable, CustomStringConvertible {
    /// The graph holds an op whose backward is not itself differentiable.
    case noSecondDerivative(op: String)
    /// `gradient(of:wrt:)` was asked for a tensor that does not require gradients.
    case notDifferentiable(position: Int, shape: [Int])

    public var description: String {
        switch self {
        case .noSecondDerivative(let op):
            return "backward with createGraph: op '\(op)' has no recorded backward (no second derivative)"
        case .notDifferentiable(let i, let shape):
            return "gradient(of:wrt:): input \(i) of shape \(shape) does not require gradients"
        }
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
    ///
    /// This form declares no second derivative: a recording backward (`createGraph: true`) that
    /// meets the op throws `AutogradError.noSecondDerivative`. Use `recordedComposed` when the
    /// closure is built from recorded ops only, or `recorded(_:_:backward:differentiableBackward:)`.
    @discardableResult
    public func recorded(_ name: String, _ inputs: [Tensor],
                         _ backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        if Autograd.shouldRecord(inputs) {
            requiresGrad = true
            gradFunction = GradFunction(name: name, inputs: inputs, backend: Engine.backend, backward: backward)
        }
        return self
    }

    /// `recorded` for a backward closure built only from recorded (differentiable) tensor ops: run
    /// with recording off it is the ordinary backward, run with recording on (create graph) its
    /// results carry history, so the op has derivatives of every order for free.
    @discardableResult
    public func recordedComposed(_ name: String, _ inputs: [Tensor],
                                 _ backward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        if Autograd.shouldRecord(inputs) {
            requiresGrad = true
            gradFunction = GradFunction(name: name, inputs: inputs, backend: Engine.backend, backward: backward,
                                        differentiableBackward: backward)
        }
        return self
    }

    /// `recorded` with two backward closures: `backward` (fast kernels, for ordinary backward
    /// passes) and `differentiableBackward` (the same gradients from recorded ops, for create-graph
    /// passes).
    @discardableResult
    public func recorded(_ name: String, _ inputs: [Tensor], backward: @escaping (Tensor) -> [Tensor?],
                         differentiableBackward: @escaping (Tensor) -> [Tensor?]) -> Tensor {
        if Autograd.shouldRecord(inputs) {
            requiresGrad = true
            gradFunction = GradFunction(name: name, inputs: inputs, backend: Engine.backend, backward: backward,
                                        differentiableBackward: differentiableBackward)
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

    /// `backward(gradient)`, or with `createGraph` a backward pass that is itself recorded (like
    /// PyTorch's `backward(create_graph=True)`): every op's gradient comes from its
    /// `differentiableBackward` run with recording on, so the gradients accumulated into the
    /// leaves' `grad` carry history and can be differentiated again (Hessian-vector products).
    /// A create-graph pass keeps the forward graph (it is part of the gradients' history) and
    /// throws `AutogradError.noSecondDerivative` before computing anything when the graph holds
    /// an op without a differentiable backward. Without `createGraph` it is exactly `backward(_:)`.
    public func backward(_ gradient: Tensor? = nil, createGraph: Bool) throws {
        guard createGraph else { backward(gradient); return }
        let seed = backwardSeed(gradient)
        guard requiresGrad else { return }
        let plan = try GradientPlan(root: self, targets: nil, stopAtTargets: false, createGraph: true)
        plan.run(seed: seed, createGraph: true, release: false, accumulateIntoLeaves: true)
    }

    func backwardSeed(_ gradient: Tensor?) -> Tensor {
        if let gradient {
            precondition(gradient.shape == shape,
                         "backward: gradient shape \(gradient.shape) differs from tensor shape \(shape)")
            return gradient
        }
        precondition(count == 1, "backward: implicit gradient needs a one-element tensor, shape is \(shape)")
        return Tensor(shape: shape, repeating: 1)
    }
}

/// The gradients of `output` with respect to each of `inputs` (like `torch.autograd.grad`):
/// `inputs` may be leaves or intermediate tensors of `output`'s graph (each must require
/// gradients); the gradient of an intermediate tensor is the total derivative through every path
/// from it to `output`. Nothing is accumulated into any `grad`; an input that `output` does not
/// depend on gets zeros. `gradient` is the output gradient (default: 1 for a one-element output).
///
/// With `createGraph` the backward pass is recorded (see `Tensor.backward(_:createGraph:)`): the
/// results carry history, so `gradient(of: (g * v).sum(), wrt: [x])` of a result g is a
/// Hessian-vector product; the forward graph is kept. Throws `AutogradError.noSecondDerivative`
/// for an op without a differentiable backward (before computing anything). Without
/// `createGraph` the nodes it walks release their graph as `backward()` does, unless
/// `retainGraph`.
public func gradient(of output: Tensor, wrt inputs: [Tensor], gradient seedGradient: Tensor? = nil,
                     createGraph: Bool = false, retainGraph: Bool = false) throws -> [Tensor] {
    let seed = output.backwardSeed(seedGradient)
    for (i, x) in inputs.enumerated() where !x.requiresGrad {
        throw AutogradError.notDifferentiable(position: i, shape: x.shape)
    }
    guard output.requiresGrad else { return inputs.map { Tensor.zeros($0.shape) } }
    let plan = try GradientPlan(root: output, targets: inputs, stopAtTargets: false, createGraph: createGraph)
    let found = plan.run(seed: seed, createGraph: createGraph, release: !createGraph && !retainGraph,
                         accumulateIntoLeaves: false)
    return inputs.map { found[ObjectIdentifier($0)] ?? Tensor.zeros($0.shape) }
}

/// The Hessian-vector product of the scalar `output` with respect to `inputs` along `directions`
/// (one per input, of its shape): the gradient of sum_k <d output / d input_k, v_k>, the first
/// gradient taken with a create-graph pass (double backward, as `torch.autograd.functional.hvp`
/// computes it). Costs about two backward passes more than a gradient and keeps the forward
/// and first backward graphs alive until it returns. Throws as `gradient(of:wrt:createGraph:)`.
public func hessianVectorProduct(of output: Tensor, wrt inputs: [Tensor], along directions: [Tensor]) throws
    -> (gradients: [Tensor], product: [Tensor]) {
    precondition(directions.count == inputs.count && zip(inputs, directions).allSatisfy { $0.shape == $1.shape },
                 "hessianVectorProduct: directions \(directions.map(\.shape)) for inputs \(inputs.map(\.shape))")
    let grads = try gradient(of: output, wrt: inputs, createGraph: true)
    let dot: Tensor = Autograd.withGrad {
        var acc: Tensor? = nil
        for (g, v) in zip(grads, directions) {
            let term = (g * v).sum()
            acc = acc.map { $0 + term } ?? term
        }
        return acc ?? Tensor(0)
    }
    let product = try gradient(of: dot, wrt: inputs).map { $0 }
    return (grads.map { $0.detached() }, product.map { $0.detached() })
}

/// One backward pass over the graph of `root`: the nodes in topological order, restricted to the
/// nodes on a path to a target when targets are given.
struct GradientPlan {
    let root: Tensor
    var order: [Tensor] = []
    var relevant: Set<ObjectIdentifier>? = nil
    let targets: Set<ObjectIdentifier>
    let stopAtTargets: Bool

    init(root: Tensor, targets: [Tensor]?, stopAtTargets: Bool, createGraph: Bool) throws {
        self.root = root
        self.stopAtTargets = stopAtTargets
        let targetIDs = Set((targets ?? []).map(ObjectIdentifier.init))
        self.targets = targetIDs
        // Topological order by iterative depth-first search (graphs can be deep).
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(root, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            let id = ObjectIdentifier(node)
            if visited.contains(id) { continue }
            visited.insert(id)
            stack.append((node, true))
            if stopAtTargets && targetIDs.contains(id) { continue }
            if let fn = node.gradFunction {
                for input in fn.inputs where input.requiresGrad && !visited.contains(ObjectIdentifier(input)) {
                    stack.append((input, false))
                }
            }
        }
        if targets != nil {
            // Inputs come before their consumers in `order`.
            var r = Set<ObjectIdentifier>()
            for node in order {
                let id = ObjectIdentifier(node)
                if targetIDs.contains(id) { r.insert(id); continue }
                if let fn = node.gradFunction, fn.inputs.contains(where: { r.contains(ObjectIdentifier($0)) }) { r.insert(id) }
            }
            relevant = r
        }
        if createGraph {
            for node in order {
                let id = ObjectIdentifier(node)
                guard let fn = node.gradFunction, relevant?.contains(id) ?? true else { continue }
                if stopAtTargets && targetIDs.contains(id) { continue }
                if fn.differentiableBackward == nil { throw AutogradError.noSecondDerivative(op: fn.name) }
            }
        }
    }

    /// Runs the pass from `seed`; returns the gradients that reached the targets.
    @discardableResult
    func run(seed: Tensor, createGraph: Bool, release: Bool, accumulateIntoLeaves: Bool) -> [ObjectIdentifier: Tensor] {
        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
        var found: [ObjectIdentifier: Tensor] = [:]
        let current = Engine.backend
        Autograd.$isEnabled.withValue(createGraph) {
            for node in order.reversed() {
                let id = ObjectIdentifier(node)
                guard let g = grads.removeValue(forKey: id) else { continue }
                if targets.contains(id) {
                    found[id] = g
                    if stopAtTargets { continue }
                }
                guard let fn = node.gradFunction else {
                    if accumulateIntoLeaves {
                        node.grad = node.grad.map { $0 + g } ?? (createGraph ? g : g.detached())
                    }
                    continue
                }
                if let relevant, !relevant.contains(id) { continue }
                let body = createGraph ? fn.differentiableBackward! : fn.backward
                let inputGrads = fn.backend === current ? body(g) : Engine.withBackend(any: fn.backend) { body(g) }
                if release { node.gradFunction = nil }
                precondition(inputGrads.count == fn.inputs.count,
                             "backward of \(fn.name): \(inputGrads.count) gradients for \(fn.inputs.count) inputs")
                for (input, ig) in zip(fn.inputs, inputGrads) {
                    guard input.requiresGrad, let ig else { continue }
                    let key = ObjectIdentifier(input)
                    if let relevant, !relevant.contains(key) { continue }
                    precondition(ig.shape == input.shape,
                                 "backward of \(fn.name): gradient shape \(ig.shape) for input of shape \(input.shape)")
                    if let existing = grads[key] { grads[key] = existing + ig } else { grads[key] = ig }
                }
            }
        }
        return found
    }
}

extension Tensor {
    /// The gradients of `f(inputs)` with output gradient `gradient`, with respect to each input
    /// that requires gradients (nil for the others), recorded: for a fused op whose differentiable
    /// backward recomputes it from recorded primitives. Each input is seen through an alias node,
    /// so an input passed twice gets each use's gradient separately and nothing flows past it.
    static func recomputedGradients(_ inputs: [Tensor?], gradient: Tensor, _ f: ([Tensor?]) -> Tensor) -> [Tensor?] {
        Autograd.withGrad {
            var aliases: [Tensor?] = inputs
            var targets: [Tensor] = []
            for (i, x) in inputs.enumerated() {
                guard let x, x.requiresGrad else { continue }
                let a = Tensor(shape: x.shape, storage: x.storage).recordedComposed("alias", [x]) { g in [g] }
                aliases[i] = a
                targets.append(a)
            }
            let y = f(aliases)
            guard y.requiresGrad, !targets.isEmpty else { return inputs.map { _ in nil } }
            do {
                let plan = try GradientPlan(root: y, targets: targets, stopAtTargets: true, createGraph: true)
                let found = plan.run(seed: gradient, createGraph: true, release: false, accumulateIntoLeaves: false)
                return inputs.indices.map { i -> Tensor? in
                    guard let x = inputs[i], x.requiresGrad, let a = aliases[i] else { return nil }
                    return found[ObjectIdentifier(a)] ?? Tensor.zeros(x.shape)
                }
            } catch {
                preconditionFailure("recomputed gradient: \(error)")
            }
        }
    }
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
