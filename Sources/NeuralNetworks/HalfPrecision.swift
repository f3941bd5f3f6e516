/// Bit-level conversions between Float32 and the two 16-bit float formats of checkpoints
/// (IEEE binary16 "F16" and bfloat16 "BF16").
///
/// Swift's `Float16` does not exist on Intel Macs, so these work on bit patterns only. They are
/// branch-light and `@inline(__always)` so that the loops in the safetensors reader and writer
/// compile to tight code. Float-to-16-bit conversions round to nearest, ties to even (as PyTorch
/// and the hardware converters do); NaN stays NaN (quiet, payload not kept), infinities stay
/// infinities, values too large for F16 become infinity.
enum HalfPrecision {
    /// binary16 bits -> Float, exact for every input (subnormals included).
    @inline(__always)
    static func float(fromFloat16Bits h: UInt16) -> Float {
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
    static func float16Bits(from value: Float) -> UInt16 {
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
    static func float(fromBFloat16Bits b: UInt16) -> Float {
        Float(bitPattern: UInt32(b) << 16)
    }

    /// Float -> bfloat16 bits, round to nearest even; NaN stays a quiet NaN.
    @inline(__always)
    static func bfloat16Bits(from value: Float) -> UInt16 {
        let f = value.bitPattern
        if f & 0x7FFF_FFFF > 0x7F80_0000 {            // NaN: keep the sign, force quiet
            return UInt16(truncatingIfNeeded: f >> 16) | 0x0040
        }
        let rounded = f &+ 0x7FFF &+ ((f >> 16) & 1)
        return UInt16(truncatingIfNeeded: rounded >> 16)
    }
}
