import CEngineSupport

/// The two 16-bit float formats of checkpoints and of 16-bit weight storage.
public enum HalfFormat: String, CaseIterable, Sendable {
    /// IEEE binary16 (safetensors "F16", torch.float16): 5 exponent bits, 10 mantissa bits.
    case float16
    /// bfloat16 (safetensors "BF16", torch.bfloat16): Float32's 8 exponent bits, 7 mantissa bits.
    case bfloat16
}

/// Conversions between Float32 and the two 16-bit float formats (IEEE binary16 "F16" and
/// bfloat16 "BF16"): per value (the reference, bit-level) and over buffers (the fast kernels).
///
/// Swift's `Float16` does not exist on Intel Macs, so these work on bit patterns only. They are
/// branch-light and `@inline(__always)` so that the loops in the safetensors reader and writer
/// compile to tight code. Float-to-16-bit conversions round to nearest, ties to even (as PyTorch
/// and the hardware converters do); NaN stays NaN (quiet, payload not kept), infinities stay
/// infinities, values too large for F16 become infinity. These match torch's `.half()` and
/// `.bfloat16()` and numpy's `astype(float16)` bit for bit on every non-NaN input (tested
/// against fixed vectors); F16 NaN -> 0x7E00 with the sign (torch's), BF16 NaN -> the top half
/// with the quiet bit set (torch gives 0x7FC0 for every NaN; both are quiet NaNs).
public enum HalfPrecision {
    /// binary16 bits -> Float, exact for every input (subnormals included).
    @inline(__always)
    public static func float(fromFloat16Bits h: UInt16) -> Float {
        let bits = UInt32(h)
        let sign = (bits & 0x8000) << 16
        var o = (bits & 0x7FFF) << 13                 // exponent and mantissa in place
        let exponent = o & 0x0F80_0000
        o &+= (127 - 15) << 23                        // rebias the exponent
        if exponent == 0x0F80_0000 {                  // Inf or NaN: exponent to all ones
            o &+= (128 - 16) << 23
        } else if exponent == 0 {                     // zero or subnormal: renormalise with a
            o &+= 1 << 23                             // float subtraction (all operands normal,
            o = (Float(bitPattern: o) - Float(bitPattern: 113 << 23)).bitPattern // so exact
        }                                             // even under flush-to-zero)
        return Float(bitPattern: o | sign)
    }

    /// Float -> binary16 bits, round to nearest even; overflow gives infinity.
    @inline(__always)
    public static func float16Bits(from value: Float) -> UInt16 {
        var f = value.bitPattern
        let sign = f & 0x8000_0000
        f ^= sign
        let result: UInt32
        if f >= (127 + 16) << 23 {                    // too large for F16, Inf or NaN
            result = f > 0x7F80_0000 ? 0x7E00 : 0x7C00
        } else if f < 113 << 23 {                     // F16 subnormal or zero: let the FPU's
            let magic: UInt32 = ((127 - 15) + (23 - 10) + 1) << 23 // round-to-nearest-even
            let sum = Float(bitPattern: f) + Float(bitPattern: magic) // align the 10 bits
            result = sum.bitPattern &- magic
        } else {
            let mantissaOdd = (f >> 13) & 1
            f &+= (UInt32(bitPattern: 15 - 127) << 23) &+ 0xFFF &+ mantissaOdd
            result = f >> 13
        }
        return UInt16(truncatingIfNeeded: result | (sign >> 16))
    }

    /// bfloat16 bits -> Float (exact: bfloat16 is the top half of a Float).
    @inline(__always)
    public static func float(fromBFloat16Bits b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// Float -> bfloat16 bits, round to nearest even; NaN stays a quiet NaN.
    @inline(__always)
    public static func bfloat16Bits(from value: Float) -> UInt16 {
        let f = value.bitPattern
        if f & 0x7FFF_FFFF > 0x7F80_0000 {            // NaN: keep the sign, force quiet
            return UInt16(truncatingIfNeeded: f >> 16) | 0x0040
        }
        let rounded = f &+ 0x7FFF &+ ((f >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}

// MARK: - Buffer kernels

extension HalfPrecision {
    /// Whether F16 conversions use the CPU's F16C instructions (x86 with AVX and F16C).
    public static let usesHardwareFloat16 = ces_has_f16c() != 0

    /// 16-bit values -> Float32 (exact). F16: F16C when present, else the scalar conversion;
    /// BF16: a shift, which the compiler vectorises.
    public static func expand(_ src: UnsafeBufferPointer<UInt16>, format: HalfFormat, into dst: UnsafeMutableBufferPointer<Float>) {
        precondition(src.count == dst.count, "HalfPrecision.expand: \(src.count) values into \(dst.count)")
        guard let s = src.baseAddress, let d = dst.baseAddress, src.count > 0 else { return }
        let n = src.count
        switch format {
        case .float16:
            if usesHardwareFloat16 { ces_f16_to_f32_f16c(s, d, n); return }
            for i in 0..<n { d[i] = float(fromFloat16Bits: s[i]) }
        case .bfloat16:
            for i in 0..<n { d[i] = Float(bitPattern: UInt32(s[i]) &<< 16) }
        }
    }

    /// Float32 -> 16-bit values, round to nearest even. F16: F16C when present (its NaN keeps
    /// the payload's top bits, the scalar path gives 0x7E00: both quiet NaNs with the sign kept),
    /// else the scalar conversion. BF16: the scalar conversion written branch-free (a select), so
    /// the loop vectorises; identical bits to `bfloat16Bits(from:)` for every input.
    public static func round(_ src: UnsafeBufferPointer<Float>, to format: HalfFormat, into dst: UnsafeMutableBufferPointer<UInt16>) {
        precondition(src.count == dst.count, "HalfPrecision.round: \(src.count) values into \(dst.count)")
        guard let s = src.baseAddress, let d = dst.baseAddress, src.count > 0 else { return }
        let n = src.count
        switch format {
        case .float16:
            if usesHardwareFloat16 { ces_f32_to_f16_f16c(s, d, n); return }
            for i in 0..<n { d[i] = float16Bits(from: s[i]) }
        case .bfloat16:
            let bits = UnsafeRawPointer(s).assumingMemoryBound(to: UInt32.self)
            for i in 0..<n {
                let f = bits[i]
                let rounded = (f &+ 0x7FFF &+ ((f &>> 16) & 1)) &>> 16
                let quietNaN = (f &>> 16) | 0x0040
                d[i] = UInt16(truncatingIfNeeded: (f & 0x7FFF_FFFF) > 0x7F80_0000 ? quietNaN : rounded)
            }
        }
    }
}

extension Reference {
    /// `HalfPrecision.expand` one value at a time with the bit-level scalar conversion.
    public static func expandHalf(_ bits: [UInt16], format: HalfFormat) -> [Float] {
        bits.map { format == .float16 ? HalfPrecision.float(fromFloat16Bits: $0) : HalfPrecision.float(fromBFloat16Bits: $0) }
    }

    /// `HalfPrecision.round` one value at a time with the bit-level scalar conversion.
    public static func roundHalf(_ values: [Float], format: HalfFormat) -> [UInt16] {
        values.map { format == .float16 ? HalfPrecision.float16Bits(from: $0) : HalfPrecision.bfloat16Bits(from: $0) }
    }
}

// MARK: - 16-bit tensors

/// Values kept as 16-bit floats (F16 or BF16), row-major, for weights that are stored compactly
/// and computed with in Float32: `float()` expands them to a fresh Float32 tensor for one op,
/// which is freed when the op's caller drops it. Not differentiable: a `HalfTensor` is never a
/// gradient leaf (its expansions are constants to autodiff), so it cannot be trained.
public final class HalfTensor: @unchecked Sendable {
    public let shape: [Int]
    public let format: HalfFormat
    public let count: Int
    /// The 16-bit patterns in host memory (engine-internal, as `TensorStorage`'s pointer).
    let bits: UnsafeMutablePointer<UInt16>

    /// `shape` with uninitialised values.
    public init(shape: [Int], format: HalfFormat) {
        self.shape = shape
        self.format = format
        count = Tensor.elementCount(shape)
        bits = UnsafeMutablePointer<UInt16>.allocate(capacity: Swift.max(count, 1))
        MemoryStatistics.allocated(bytes: count * 2)
    }

    /// `tensor`'s values rounded to nearest even in `format`.
    public convenience init(rounding tensor: Tensor, to format: HalfFormat) {
        self.init(shape: tensor.shape, format: format)
        assign(rounding: tensor)
    }

    deinit {
        MemoryStatistics.freed(bytes: count * 2)
        bits.deallocate()
    }

    /// Bytes of value storage (2 per element).
    public var byteCount: Int { count * 2 }

    var buffer: UnsafeMutableBufferPointer<UInt16> { UnsafeMutableBufferPointer(start: bits, count: count) }

    /// The 16-bit patterns in row-major order, copied to host memory.
    public var bitPatterns: [UInt16] { Array(buffer) }

    /// Overwrites the values with `bytes`: `count` little-endian 16-bit patterns of this tensor's
    /// format, copied bit for bit (nothing is rounded). The bytes need no alignment.
    public func assignBits(littleEndian bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count == count * 2, "HalfTensor.assignBits: \(bytes.count) bytes for \(count) values")
        guard count > 0, let base = bytes.baseAddress else { return }
        #if _endian(little)
        UnsafeMutableRawPointer(bits).copyMemory(from: base, byteCount: count * 2)
        #else
        for i in 0..<count { bits[i] = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)) }
        #endif
    }

    /// Overwrites the values with `tensor`'s (same element count), rounded to nearest even.
    public func assign(rounding tensor: Tensor) {
        precondition(tensor.count == count, "HalfTensor.assign: shapes \(tensor.shape) and \(shape) differ in size")
        Engine.backend.roundHalf(tensor, into: self)
    }

    /// The values as a new Float32 tensor (exact; no history).
    public func float() -> Tensor {
        Engine.backend.expandHalf(self)
    }

    /// Rows of this [V, D] table picked by `indices` (integer ids stored as Float), as Float32:
    /// `Tensor.embedding(indices:weight:)` on the expanded table, expanding only the rows used.
    /// Ids are checked as there. No gradient (the table is not trainable).
    public func embedding(indices: Tensor) -> Tensor {
        precondition(shape.count == 2, "embedding: weight must be [vocabulary, dim], got shape \(shape)")
        let ids = embeddingIDs(indices, vocabulary: shape[0])
        return Engine.backend.expandHalfRows(self, ids).viewed(indices.shape + [shape[1]])
    }
}

// MARK: - CPU kernels

extension CPUBackend {
    public func roundHalf(_ tensor: Tensor, into half: HalfTensor) {
        let bits = half.bits, format = half.format
        parallelFor(half.count, grain: 1 << 18) { r in
            HalfPrecision.round(UnsafeBufferPointer(start: tensor.pointer + r.lowerBound, count: r.count), to: format,
                                into: UnsafeMutableBufferPointer(start: bits + r.lowerBound, count: r.count))
        }
    }

    public func expandHalf(_ half: HalfTensor) -> Tensor {
        let out = Tensor.uninitialized(half.shape)
        let bits = half.bits, format = half.format
        parallelFor(half.count, grain: 1 << 18) { r in
            HalfPrecision.expand(UnsafeBufferPointer(start: bits + r.lowerBound, count: r.count), format: format,
                                 into: UnsafeMutableBufferPointer(start: out.pointer + r.lowerBound, count: r.count))
        }
        return out
    }

    public func expandHalfRows(_ half: HalfTensor, _ rows: [Int]) -> Tensor {
        let dim = half.shape[1]
        let out = Tensor.uninitialized([rows.count, dim])
        for (t, id) in rows.enumerated() {
            HalfPrecision.expand(UnsafeBufferPointer(start: half.bits + id * dim, count: dim), format: half.format,
                                 into: UnsafeMutableBufferPointer(start: out.pointer + t * dim, count: dim))
        }
        return out
    }
}
