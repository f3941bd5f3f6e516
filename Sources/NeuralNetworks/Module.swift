import Foundation
import TensorEngine

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

/// How the large weights of a model (those of `Linear`, `Conv2d` and `Embedding`) are kept in
/// memory. Computation is Float32 in every case: a 16-bit weight is expanded to a transient
/// Float32 tensor when its layer runs and freed when the layer returns, so memory holds the 16-bit
/// copies plus one layer's Float32 weight at a time. Biases and normalisation parameters stay
/// Float32 (they are small). 16-bit weights are for inference: they are not trainable parameters
/// (see `Module.namedParameters`), though gradients still flow through them to the inputs.
public enum WeightStorage: String, CaseIterable, Sendable {
    case float32 = "fp32"
    case float16 = "fp16"
    case bfloat16 = "bf16"

    /// The 16-bit format, nil for Float32.
    public var halfFormat: HalfFormat? {
        switch self {
        case .float32: return nil
        case .float16: return .float16
        case .bfloat16: return .bfloat16
        }
    }

    /// The storage layers made inside `withValue` use (task-local, default Float32). Building a
    /// model under `.float16` stores each weight as soon as its layer is made, so a model is never
    /// held in Float32 as a whole:
    /// `let unet = WeightStorage.$current.withValue(.float16) { UNet2DConditionModel(config: c) }`.
    @TaskLocal public static var current: WeightStorage = .float32
}

/// One parameter of a module: a Float32 tensor (a gradient leaf, trainable) or, for a layer weight
/// stored as 16-bit, a `HalfTensor`. `value` is always Float32.
public final class Parameter {
    public let shape: [Int]
    /// Whether this parameter may be stored as 16-bit (the weights of Linear, Conv2d, Embedding).
    public let storable: Bool
    public private(set) var storage: WeightStorage = .float32
    /// The Float32 leaf, when stored as Float32.
    public private(set) var tensor: Tensor?
    /// The 16-bit values, when stored as 16-bit.
    public private(set) var half: HalfTensor?

    public init(_ tensor: Tensor, storable: Bool) {
        shape = tensor.shape
        self.storable = storable
        self.tensor = tensor
    }

    /// Float32 values for a forward pass: the leaf itself, or a fresh expansion of the 16-bit
    /// values that lives as long as the caller holds it.
    public var value: Tensor { tensor ?? half!.float() }

    public var count: Int { Tensor.elementCount(shape) }

    /// Bytes of value storage: 4 per element as Float32, 2 as 16-bit.
    public var byteCount: Int { half.map(\.byteCount) ?? count * 4 }

    /// Converts the storage (rounding to nearest even into 16-bit, or expanding back to Float32,
    /// which cannot restore what rounding lost). Non-storable parameters stay Float32.
    public func store(as storage: WeightStorage) {
        guard storable, storage != self.storage else { return }
        if let format = storage.halfFormat {
            half = HalfTensor(rounding: value, to: format)
            tensor = nil
        } else {
            let leaf = value
            leaf.requiresGrad = true
            tensor = leaf
            half = nil
        }
        self.storage = storage
    }

    /// Overwrites the values (same element count), rounding when stored as 16-bit.
    public func assign(_ values: Tensor) {
        if let half { half.assign(rounding: values) } else { tensor!.assign(values) }
    }
}

/// Base of every layer, in the style of MLXNN / torch.nn: a module owns named parameters and
/// named child modules, and the dotted paths of the two (`down_blocks.0.resnets.1.conv1.weight`)
/// are its checkpoint keys. Subclasses register what they own in their initialisers with
/// `parameter(_:_:)`, `register(_:_:)` (for a layer weight that may be stored as 16-bit) and
/// `child(_:_:)`, using exactly diffusers' attribute names, so checkpoints load by key in both
/// directions.
open class Module {
    private var entries: [(name: String, parameter: Parameter)] = []
    public private(set) var children: [(name: String, module: Module)] = []
    /// Training mode (dropout active); `eval()` turns it off for the whole tree.
    public private(set) var training = true

    public init() {}

    /// This module's own parameters stored as Float32, by name.
    public var ownParameters: [(name: String, tensor: Tensor)] {
        entries.compactMap { e in e.parameter.tensor.map { (e.name, $0) } }
    }

    /// Registers a Float32 parameter (made a gradient leaf) and returns it.
    @discardableResult
    public func parameter(_ name: String, _ tensor: Tensor) -> Tensor {
        register(name, Parameter(tensor, storable: false))
        return tensor
    }

    /// Registers a parameter made with `Parameter(_:storable:)`; a storable one (a layer weight)
    /// is then stored as `WeightStorage.current` (Float32 unless the model is built inside
    /// `WeightStorage.$current.withValue`).
    public func register(_ name: String, _ p: Parameter) {
        precondition(!entries.contains { $0.name == name }, "\(type(of: self)): parameter '\(name)' registered twice")
        p.tensor?.requiresGrad = true
        entries.append((name, p))
        p.store(as: WeightStorage.current)
    }

    /// Registers a child module and returns it.
    @discardableResult
    public func child<M: Module>(_ name: String, _ module: M) -> M {
        precondition(!children.contains { $0.name == name }, "\(type(of: self)): child '\(name)' registered twice")
        children.append((name, module))
        return module
    }

    /// Every parameter, whatever its storage, with its dotted key, in registration order (depth first).
    public func allParameters(prefix: String = "") -> [(key: String, parameter: Parameter)] {
        var out = entries.map { (prefix + $0.name, $0.parameter) }
        for (name, m) in children { out += m.allParameters(prefix: prefix + name + ".") }
        return out
    }

    /// Every trainable (Float32-stored) parameter with its dotted key, in registration order
    /// (depth first). Weights stored as 16-bit are not listed: they cannot be trained (see
    /// `hasHalfPrecisionWeights`).
    public func namedParameters(prefix: String = "") -> [(key: String, tensor: Tensor)] {
        allParameters(prefix: prefix).compactMap { e in e.parameter.tensor.map { (e.key, $0) } }
    }

    public var parameters: [Tensor] { namedParameters().map(\.tensor) }

    /// Number of parameter values, whatever their storage.
    public var parameterCount: Int { allParameters().reduce(0) { $0 + $1.parameter.count } }

    /// Bytes the parameter values occupy (4 per Float32 value, 2 per 16-bit value).
    public var parameterByteCount: Int { allParameters().reduce(0) { $0 + $1.parameter.byteCount } }

    /// Whether some weight is stored as 16-bit (then the model is for inference only).
    public var hasHalfPrecisionWeights: Bool { allParameters().contains { $0.parameter.half != nil } }

    /// Stores every Linear, Conv2d and Embedding weight of the tree as `storage` (converting the
    /// values in place; see `Parameter.store(as:)`).
    public func storeWeights(as storage: WeightStorage) {
        for (_, p) in allParameters() { p.store(as: storage) }
    }

    public func zeroGrad() { for p in parameters { p.grad = nil } }

    public func train(_ on: Bool = true) {
        training = on
        for (_, m) in children { m.train(on) }
    }

    public func eval() { train(false) }

    /// Copies values into the parameters by key (rounded into 16-bit-stored weights). Every
    /// parameter must be present with its exact shape, and (when `strict`) every given tensor must
    /// be used; errors name the keys.
    public func load(_ tensors: [String: Tensor], source: String = "weights", strict: Bool = true) throws {
        let mine = allParameters()
        try checkKeys(mine, Set(tensors.keys), source: source, strict: strict) { tensors[$0]!.shape }
        for (key, p) in mine { p.assign(tensors[key]!) }
    }

    /// Loads from a safetensors file by key, one tensor at a time, so at most one tensor is
    /// converted to Float32 at once (never the whole file). An F16 (BF16) tensor going into an
    /// F16 (BF16)-stored weight is copied bit for bit, without a Float32 step. `key` maps a
    /// file's tensor name to a parameter key, or to nil to skip the tensor (e.g. a buffer the
    /// model does not have). Missing, unused or misshapen tensors are named as in `load(_:)`; a
    /// NaN or infinite value throws `SafetensorsError.nonFinite` naming the file and tensor.
    public func load(from file: SafetensorsFile, source: String? = nil, strict: Bool = true,
                     key: (String) -> String? = { $0 }) throws {
        let source = source ?? file.url.path
        var fileName: [String: String] = [:]
        for name in file.names { if let k = key(name) { fileName[k] = name } }
        let mine = allParameters()
        try checkKeys(mine, Set(fileName.keys), source: source, strict: strict) { try file.info(fileName[$0]!).shape }
        for (k, p) in mine {
            let name = fileName[k]!
            try file.checkFinite(name)  // a NaN weight would give a uniform answer, not an error
            let dtype = try file.info(name).dtype
            if let half = p.half, (dtype == .f16 && half.format == .float16) || (dtype == .bf16 && half.format == .bfloat16) {
                try file.copyHalfBits(name, into: half)
            } else {
                p.assign(try file.tensor(name))
            }
        }
    }

    private func checkKeys(_ mine: [(key: String, parameter: Parameter)], _ given: Set<String>, source: String, strict: Bool,
                           shape: (String) throws -> [Int]) throws {
        let missing = mine.map(\.key).filter { !given.contains($0) }
        if !missing.isEmpty { throw ParameterLoadingError.missing(keys: missing, source: source) }
        if strict {
            let known = Set(mine.map(\.key))
            let unused = given.filter { !known.contains($0) }.sorted()
            if !unused.isEmpty { throw ParameterLoadingError.unused(keys: unused, source: source) }
        }
        for (key, p) in mine {
            let found = try shape(key)
            guard found == p.shape else {
                throw ParameterLoadingError.shapeMismatch(key: key, expected: p.shape, found: found, source: source)
            }
        }
    }

    /// The parameters as a key -> Float32 tensor map (copies; 16-bit weights expanded), e.g. for saving.
    public func stateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, p) in allParameters() { out[k] = p.tensor?.copy() ?? p.value }
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
