import CEngineSupport
import Foundation

/// The number type matrix products compute in. Tensors are always stored as Float32; only the
/// products (linear layers, convolutions, attention; forward and backward) change.
///
/// `.bfloat16` matches what PyTorch's CPU autocast does for a bf16 matmul: both operands rounded to
/// bfloat16 (nearest even), products summed in float32, a float32 result. It runs on CPUs with
/// AVX512_BF16 (VDPBF16PS); elsewhere selecting it is an error, never a silent fallback. Everything
/// else (normalization, softmax, elementwise ops, the sums of the diffusion loss) stays float32.
public enum ComputeDType: String, Sendable, Codable, CaseIterable {
    case float32 = "fp32"
    case bfloat16 = "bf16"

    /// Parses "fp32" / "float32" / "bf16" / "bfloat16".
    public init?(name: String) {
        switch name.lowercased() {
        case "fp32", "float32": self = .float32
        case "bf16", "bfloat16": self = .bfloat16
        default: return nil
        }
    }
}

/// `Engine.setComputeDType(.bfloat16)` on a CPU without the instructions it needs.
public struct ComputeDTypeUnavailable: Error, CustomStringConvertible {
    public let dtype: ComputeDType
    public let reason: String
    public var description: String { "compute dtype \(dtype.rawValue) is not available on this machine: \(reason)" }
}

extension Engine {
    /// Process-wide, set once at start-up (before any work) by `setComputeDType`.
    @usableFromInline nonisolated(unsafe) static var _computeDType: ComputeDType = .float32

    /// The dtype matrix products compute in (default `.float32`).
    public static var computeDType: ComputeDType { _computeDType }

    /// Why `.bfloat16` cannot be used here, or nil when it can.
    public static var bfloat16Problem: String? {
        ces_bf16_gemm_available() == 1 ? nil
            : "the CPU lacks AVX512_BF16 (with AVX-512 F, BW and VL); this build's bf16 products need it"
    }

    /// Selects the dtype of every later matrix product. Call before any work, not while kernels
    /// run (it is a plain process-wide setting, read inside kernels).
    public static func setComputeDType(_ dtype: ComputeDType) throws {
        if dtype == .bfloat16, let problem = bfloat16Problem {
            throw ComputeDTypeUnavailable(dtype: dtype, reason: problem)
        }
        _computeDType = dtype
    }
}

extension Reference {
    /// `x` rounded to the nearest bfloat16 (ties to even) and widened back, with subnormal inputs
    /// read as zero and NaN kept NaN: what VCVTNEPS2BF16 computes, in plain integer arithmetic.
    public static func bfloat16Rounded(_ x: Float) -> Float {
        if x.isNaN { return x }
        if x.isSubnormal { return x.sign == .minus ? -0.0 : 0 }
        let bits = x.bitPattern
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return Float(bitPattern: rounded & 0xFFFF_0000)
    }

    /// C = alpha op(A) op(B) + beta C for row-major [m, k] / [k, n] operands (as stored before
    /// `transA` / `transB`), both rounded by `bfloat16Rounded`, summed in Double: the yardstick
    /// of the bfloat16 kernel, whose float32 sums may differ from it by float32 rounding only.
    public static func bfloat16Product(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                                       a: [Float], b: [Float], beta: Float, c: [Float]) -> [Float] {
        var out = c
        for i in 0..<m {
            for j in 0..<n {
                var sum = 0.0
                for p in 0..<k {
                    let x = transA ? a[p * m + i] : a[i * k + p]
                    let y = transB ? b[j * k + p] : b[p * n + j]
                    sum += Double(bfloat16Rounded(x)) * Double(bfloat16Rounded(y))
                }
                out[i * n + j] = Float(Double(alpha) * sum + (beta == 0 ? 0 : Double(beta) * Double(c[i * n + j])))
            }
        }
        return out
    }
}

/// The hardware conversion (VCVTNEPS2BF16) of `values`, widened back to Float; for tests. Only
/// where `Engine.bfloat16Problem` is nil.
func hardwareBFloat16Rounded(_ values: [Float]) -> [Float] {
    var bits = [UInt16](repeating: 0, count: values.count)
    values.withUnsafeBufferPointer { src in
        bits.withUnsafeMutableBufferPointer { dst in ces_f32_to_bf16(src.baseAddress, dst.baseAddress, src.count) }
    }
    return bits.map { Float(bitPattern: UInt32($0) << 16) }
}

/// `sgemm` on arrays (row-major, packed), for tests of the product funnel.
func sgemmArrays(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: [Float], b: [Float],
                 beta: Float, c: [Float]) -> [Float] {
    var out = c
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            out.withUnsafeMutableBufferPointer { pc in
                sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!, lda: transA ? m : k,
                      b: pb.baseAddress!, ldb: transB ? k : n, beta: beta, c: pc.baseAddress!, ldc: n)
            }
        }
    }
    return out
}
