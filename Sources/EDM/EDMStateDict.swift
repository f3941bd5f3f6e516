import Foundation
import NeuralNetworks
import TensorEngine

// A module tree's state dict as EDM's `state_dict()` has it: parameters and buffers by dotted key.

extension Module {
    /// Parameters (16-bit weights expanded) and buffers by key, as copies: what `save` writes.
    public func edmStateDict() -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (k, p) in allParameters() { out[k] = p.tensor?.copy() ?? p.value }
        for (k, b) in edmBuffers() { out[k] = b.copy() }
        return out
    }

    /// Loads parameters and buffers by key from `tensors`, strictly: every key of the tree must be
    /// given with its shape, and every given tensor used; errors name the keys and `source`.
    public func loadEDMState(_ tensors: [String: Tensor], source: String = "weights") throws {
        let (params, buffers) = try checkEDMKeys(Set(tensors.keys), source: source) { tensors[$0]!.shape }
        for (k, p) in params { p.assign(tensors[k]!) }
        for (k, b) in buffers { b.assign(tensors[k]!) }
    }

    /// `loadEDMState` from a safetensors file, one tensor at a time; an F16 (BF16) tensor going
    /// into an F16 (BF16)-stored weight is copied bit for bit. NaN or infinite values are refused
    /// (`SafetensorsError.nonFinite`, naming the file and tensor).
    public func loadEDMState(from file: SafetensorsFile, source: String? = nil) throws {
        let (params, buffers) = try checkEDMKeys(Set(file.names), source: source ?? file.url.path) { try file.info($0).shape }
        for (k, p) in params {
            try file.checkFinite(k)
            let dtype = try file.info(k).dtype
            if let half = p.half, (dtype == .f16 && half.format == .float16) || (dtype == .bf16 && half.format == .bfloat16) {
                try file.copyHalfBits(k, into: half)
            } else {
                p.assign(try file.tensor(k))
            }
        }
        for (k, b) in buffers { try file.checkFinite(k); b.assign(try file.tensor(k)) }
    }

    private func checkEDMKeys(_ given: Set<String>, source: String, shape: (String) throws -> [Int]) throws
        -> ([(key: String, parameter: Parameter)], [(key: String, tensor: Tensor)]) {
        let params = allParameters(), buffers = edmBuffers()
        let mine = params.map { ($0.key, $0.parameter.shape) } + buffers.map { ($0.key, $0.tensor.shape) }
        let missing = mine.map(\.0).filter { !given.contains($0) }
        if !missing.isEmpty { throw ParameterLoadingError.missing(keys: missing, source: source) }
        let known = Set(mine.map(\.0))
        let unused = given.filter { !known.contains($0) }.sorted()
        if !unused.isEmpty { throw ParameterLoadingError.unused(keys: unused, source: source) }
        for (key, expected) in mine {
            let found = try shape(key)
            guard found == expected else {
                throw ParameterLoadingError.shapeMismatch(key: key, expected: expected, found: found, source: source)
            }
        }
        return (params, buffers)
    }
}
