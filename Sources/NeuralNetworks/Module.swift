import Foundation

/// Errors from loading or matching parameters by key.
public enum ParameterLoadingError: Error, CustomStringConvertible, Equatable {
    case missing(keys: [String], source: String)
    case unused(keys: [String], source: String)
    case shapeMismatch(key: String, expected: [Int], found: [Int], source: String)

    public var description: String {
        switch self {
        case let .missing(keys, source):
            return "\(source): missing \(keys.count) parameter(s): \(Self.list(keys))"
        case let .unused(keys, source):
            return "\(source): \(keys.count) unused tensor(s) that the model does not have: \(Self.list(keys))"
        case let .shapeMismatch(key, expected, found, source):
            return "\(source): '\(key)' has shape \(found), the model expects \(expected)"
        }
    }

    static func list(_ keys: [String]) -> String {
        keys.count <= 12 ? keys.joined(separator: ", ") : keys.prefix(12).joined(separator: ", ") + ", ... (\(keys.count - 12) more)"
    }
}

/// Base of every layer, in the style of MLXNN / torch.nn: a module owns named parameters and
/// named child modules, and the dotted paths of the two (`down_blocks.0.resnets.1.conv1.weight`)
/// are its checkpoint keys. Subclasses register what they own in their initialisers with
/// `parameter(_:_:)` and `child(_:_:)`, using exactly diffusers' attribute names, so checkpoints
/// load by key in both directions.
open class Module {
    public private(set) var ownParameters: [(name: String, tensor: Tensor)] = []
    public private(set) var children: [(name: String, module: Module)] = []
    /// Training mode (dropout active); `eval()` turns it off for the whole tree.
    public private(set) var training = true

    public init() {}

    /// Registers a parameter (made a gradient leaf) and returns it.
    @discardableResult
    public func parameter(_ name: String, _ tensor: Tensor) -> Tensor {
        precondition(!ownParameters.contains { $0.name == name }, "\(type(of: self)): parameter '\(name)' registered twice")
        tensor.requiresGrad = true
        ownParameters.append((name, tensor))
        return tensor
    }

    /// Registers a child module and returns it.
    @discardableResult
    public func child<M: Module>(_ name: String, _ module: M) -> M {
        precondition(!children.contains { $0.name == name }, "\(type(of: self)): child '\(name)' registered twice")
        children.append((name, module))
        return module
    }

    /// Every parameter with its dotted key, in registration order (depth first).
    public func namedParameters(prefix: String = "") -> [(key: String, tensor: Tensor)] {
        var out = ownParameters.map { (prefix + $0.name, $0.tensor) }
        for (name, m) in children { out += m.namedParameters(prefix: prefix + name + ".") }
        return out
    }

    public var parameters: [Tensor] { namedParameters().map(\.tensor) }

    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    public func zeroGrad() { for p in parameters { p.grad = nil } }

    public func train(_ on: Bool = true) {
        training = on
        for (_, m) in children { m.train(on) }
    }

    public func eval() { train(false) }

    /// Copies values into the parameters by key. Every parameter must be present with its exact
    /// shape, and (when `strict`) every given tensor must be used; errors name the keys.
    public func load(_ tensors: [String: Tensor], source: String = "weights", strict: Bool = true) throws {
        let mine = namedParameters()
        let missing = mine.map(\.key).filter { tensors[$0] == nil }
        if !missing.isEmpty { throw ParameterLoadingError.missing(keys: missing, source: source) }
        if strict {
            let known = Set(mine.map(\.key))
            let unused = tensors.keys.filter { !known.contains($0) }.sorted()
            if !unused.isEmpty { throw ParameterLoadingError.unused(keys: unused, source: source) }
        }
        for (key, p) in mine {
            let t = tensors[key]!
            guard t.shape == p.shape else {
                throw ParameterLoadingError.shapeMismatch(key: key, expected: p.shape, found: t.shape, source: source)
            }
        }
        for (key, p) in mine { p.assign(tensors[key]!) }
    }

    /// The parameters as a key -> tensor map (copies), e.g. for saving.
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, t) in namedParameters() { out[k] = t.copy() }
        return out
    }
}

/// An ordered list of modules keyed "0", "1", ... (torch.nn.ModuleList).
public final class ModuleList<Element: Module>: Module {
    public private(set) var items: [Element] = []

    public init(_ items: [Element]) {
        super.init()
        for m in items { append(m) }
    }

    public func append(_ m: Element) {
        child(String(items.count), m)
        items.append(m)
    }

    public var count: Int { items.count }
    public subscript(i: Int) -> Element { items[i] }
}
