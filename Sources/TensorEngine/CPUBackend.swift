import Foundation

/// The production backend: host memory, BLAS products split into fixed partitions, Winograd /
/// pointwise / im2col convolutions, fused normalisation, softmax and attention kernels, and
/// vectorised elementwise loops, all parallel over fixed chunks so that results are bitwise
/// identical for every `Engine.threads` (docs/engine.md). Its methods live next to their kernels:
/// this file holds the elementwise, copy and update kernels; the others are in the op files
/// (`extension CPUBackend` in MatMul.swift, Convolution.swift, ...).
public final class CPUBackend: ComputeBackend {
    public static let shared = CPUBackend()
    public var name: String { "cpu" }
    private init() {}
}

// MARK: - Elementwise

extension CPUBackend {
    public func unary(_ op: UnaryOp, _ x: Tensor) -> Tensor {
        let invSqrt2: Float = 0.70710678118654752
        let c: Float = 0.79788456080286536 // sqrt(2/pi)
        switch op {
        case .negate: return mapKernel(x) { -$0 }
        case .addScalar(let s): return mapKernel(x) { $0 + s }
        case .multiplyScalar(let s): return mapKernel(x) { $0 * s }
        case .subtractFromScalar(let s): return mapKernel(x) { s - $0 }
        case .divideScalar(let s): return mapKernel(x) { s / $0 }
        case .powScalar(let p): return mapKernel(x) { Foundation.pow($0, p) }
        case .square: return mapKernel(x) { $0 * $0 }
        case .exp: return mapKernel(x) { Foundation.exp($0) }
        case .log: return mapKernel(x) { Foundation.log($0) }
        case .sqrt: return mapKernel(x) { Foundation.sqrt($0) }
        case .rsqrt: return mapKernel(x) { 1 / Foundation.sqrt($0) }
        case .abs: return mapKernel(x) { Swift.abs($0) }
        case .sign: return mapKernel(x) { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
        case .sin: return mapKernel(x) { Foundation.sin($0) }
        case .cos: return mapKernel(x) { Foundation.cos($0) }
        case .clamp(let lo, let hi): return mapKernel(x) { Swift.min(Swift.max($0, lo), hi) }
        case .sigmoid: return mapKernel(x) { sigmoidScalar($0) }
        case .tanh: return mapKernel(x) { fastTanh($0) }
        case .silu: return mapKernel(x) { $0 * sigmoidScalar($0) }
        case .relu: return mapKernel(x) { Swift.max($0, 0) }
        case .softplus: return mapKernel(x) { softplusScalar($0) }
        case .gelu: return mapKernel(x) { 0.5 * $0 * (1 + Foundation.erf($0 * invSqrt2)) }
        case .geluTanh: return mapKernel(x) { v in 0.5 * v * (1 + fastTanh(c * (v + 0.044715 * v * v * v))) }
        case .quickGelu: return mapKernel(x) { $0 * sigmoidScalar(1.702 * $0) }
        case .greaterThan(let s): return mapKernel(x) { $0 > s ? 1 : 0 }
        case .lessThan(let s): return mapKernel(x) { $0 < s ? 1 : 0 }
        case .nonzero: return mapKernel(x) { $0 != 0 ? 1 : 0 }
        }
    }

    public func unaryGradient(_ op: UnaryOp, gradient g: Tensor, operand: Tensor) -> Tensor {
        let invSqrt2: Float = 0.70710678118654752
        let invSqrt2Pi: Float = 0.39894228040143268
        let c: Float = 0.79788456080286536 // sqrt(2/pi)
        let x = operand, y = operand
        switch op {
        case .divideScalar(let s): return zipKernel(g, x) { gv, xv in -gv * s / (xv * xv) }
        case .powScalar(let p): return zipKernel(g, x) { gv, xv in gv * p * Foundation.pow(xv, p - 1) }
        case .square: return zipKernel(g, x) { gv, xv in 2 * gv * xv }
        case .exp: return zipKernel(g, y) { $0 * $1 }
        case .log: return zipKernel(g, x) { $0 / $1 }
        case .sqrt: return zipKernel(g, y) { 0.5 * $0 / $1 }
        case .rsqrt: return zipKernel(g, y) { gv, yv in -0.5 * gv * yv * yv * yv }
        case .abs: return zipKernel(g, x) { gv, xv in xv > 0 ? gv : (xv < 0 ? -gv : 0) }
        case .sin: return zipKernel(g, x) { gv, xv in gv * Foundation.cos(xv) }
        case .cos: return zipKernel(g, x) { gv, xv in -gv * Foundation.sin(xv) }
        case .clamp(let lo, let hi): return zipKernel(g, x) { gv, xv in (xv >= lo && xv <= hi) ? gv : 0 }
        case .sigmoid: return zipKernel(g, y) { gv, yv in gv * yv * (1 - yv) }
        case .tanh: return zipKernel(g, y) { gv, yv in gv * (1 - yv * yv) }
        case .silu:
            return zipKernel(g, x) { gv, xv in
                let s = sigmoidScalar(xv)
                return gv * s * (1 + xv * (1 - s))
            }
        case .relu: return zipKernel(g, x) { gv, xv in xv > 0 ? gv : 0 }
        case .softplus: return zipKernel(g, x) { gv, xv in gv * sigmoidScalar(xv) }
        case .gelu:
            return zipKernel(g, x) { gv, xv in
                let cdf = 0.5 * (1 + Foundation.erf(xv * invSqrt2))
                let pdf = invSqrt2Pi * Foundation.exp(-0.5 * xv * xv)
                return gv * (cdf + xv * pdf)
            }
        case .geluTanh:
            return zipKernel(g, x) { gv, v in
                let u = c * (v + 0.044715 * v * v * v)
                let t = fastTanh(u)
                let du = c * (1 + 3 * 0.044715 * v * v)
                return gv * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du)
            }
        case .quickGelu:
            return zipKernel(g, x) { gv, xv in
                let s = sigmoidScalar(1.702 * xv)
                return gv * (s + 1.702 * xv * s * (1 - s))
            }
        case .negate, .addScalar, .multiplyScalar, .subtractFromScalar, .sign, .greaterThan, .lessThan, .nonzero:
            preconditionFailure("unaryGradient: \(op) has no gradient kernel")
        }
    }

    public func binary(_ op: BinaryOp, _ a: Tensor, _ b: Tensor) -> Tensor {
        switch op {
        case .add: return broadcastKernel(a, b, op: "add", AddKernelOp())
        case .subtract: return broadcastKernel(a, b, op: "sub", SubKernelOp())
        case .multiply: return broadcastKernel(a, b, op: "mul", MulKernelOp())
        case .divide: return broadcastKernel(a, b, op: "div", DivKernelOp())
        case .pow: return broadcastKernel(a, b, op: "pow") { Foundation.pow($0, $1) }
        case .minimum: return broadcastKernel(a, b, op: "minimum") { Swift.min($0, $1) }
        case .maximum: return broadcastKernel(a, b, op: "maximum") { Swift.max($0, $1) }
        case .greater: return broadcastKernel(a, b, op: "greater") { $0 > $1 ? 1 : 0 }
        case .less: return broadcastKernel(a, b, op: "less") { $0 < $1 ? 1 : 0 }
        case .equal: return broadcastKernel(a, b, op: "equal") { $0 == $1 ? 1 : 0 }
        case .minimumWeight: return broadcastKernel(a, b, op: "minimum") { $0 < $1 ? 1 : ($0 == $1 ? 0.5 : 0) }
        case .maximumWeight: return broadcastKernel(a, b, op: "maximum") { $0 > $1 ? 1 : ($0 == $1 ? 0.5 : 0) }
        }
    }

    public func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) -> Tensor {
        let shape = broadcastShape(condition.shape, broadcastShape(a.shape, b.shape, op: "where"), op: "where")
        func full(_ t: Tensor) -> Tensor { t.shape == shape ? t : broadcast(t, to: shape) }
        return zip3Kernel(full(condition), full(a), full(b)) { c, x, y in c != 0 ? x : y }
    }
}

// MARK: - Copies, conversions and in-place updates

extension CPUBackend {
    public func copy(_ x: Tensor) -> Tensor {
        let out = Tensor.uninitialized(x.shape)
        out.pointer.update(from: x.pointer, count: x.count)
        return out
    }

    public func assign(_ source: Tensor, to destination: Tensor) {
        destination.pointer.update(from: source.pointer, count: destination.count)
    }

    public func scaleAndAdd(_ x: Tensor, _ a: Float, _ y: Tensor, _ b: Float) {
        let px = x.pointer, py = y.pointer
        parallelFor(x.count, grain: 65536) { r in
            for j in r { px[j] = a * px[j] + b * py[j] }
        }
    }

    public func adamW(parameter p: Tensor, gradient g: Tensor, firstMoment m: Tensor, secondMoment v: Tensor, _ s: AdamWStep) {
        let pp = p.pointer, pg = g.pointer, pm = m.pointer, pv = v.pointer
        let b1 = s.beta1, b2 = s.beta2, eps = s.eps, decay = s.decay, stepSize = s.stepSize
        let c2Root = s.secondMomentCorrectionRoot
        parallelFor(p.count, grain: 65536) { r in
            for j in r {
                let gj = pg[j]
                let mj = b1 * pm[j] + (1 - b1) * gj
                let vj = b2 * pv[j] + (1 - b2) * gj * gj
                pm[j] = mj; pv[j] = vj
                pp[j] = pp[j] * decay - stepSize * mj / (vj.squareRoot() / c2Root + eps)
            }
        }
    }

    public func decode(_ bytes: UnsafeRawBufferPointer, format: ScalarFormat, shape: [Int]) -> Tensor {
        let out = Tensor.uninitialized(shape)
        let n = out.count
        guard n > 0, let src = bytes.baseAddress else { return out }
        let dst = out.pointer
        switch format {
        case .float32:
            #if _endian(little)
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: n * 4)
            #else
            for i in 0..<n {
                dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: i &* 4, as: UInt32.self)))
            }
            #endif
        case .float16, .bfloat16:
            let half: HalfFormat = format == .float16 ? .float16 : .bfloat16
            #if _endian(little)
            // The usual case (files keep 16-bit data 2-aligned): the buffer kernels.
            if Int(bitPattern: src) % 2 == 0 {
                HalfPrecision.expand(UnsafeBufferPointer(start: src.assumingMemoryBound(to: UInt16.self), count: n),
                                     format: half, into: UnsafeMutableBufferPointer(start: dst, count: n))
                return out
            }
            #endif
            for i in 0..<n {
                let h = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self))
                dst[i] = half == .float16 ? HalfPrecision.float(fromFloat16Bits: h) : HalfPrecision.float(fromBFloat16Bits: h)
            }
        case .float64:
            for i in 0..<n {
                let bits = UInt64(littleEndian: src.loadUnaligned(fromByteOffset: i &* 8, as: UInt64.self))
                dst[i] = Float(Double(bitPattern: bits))
            }
        case .bool:
            for i in 0..<n { dst[i] = src.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
        case .uint8: integersToFloat(src, n, dst, UInt8.self)
        case .int8: integersToFloat(src, n, dst, Int8.self)
        case .int16: integersToFloat(src, n, dst, Int16.self)
        case .uint16: integersToFloat(src, n, dst, UInt16.self)
        case .int32: integersToFloat(src, n, dst, Int32.self)
        case .uint32: integersToFloat(src, n, dst, UInt32.self)
        case .int64: integersToFloat(src, n, dst, Int64.self)
        case .uint64: integersToFloat(src, n, dst, UInt64.self)
        }
        return out
    }
}

@inline(__always)
private func integersToFloat<T: FixedWidthInteger>(_ src: UnsafeRawPointer, _ n: Int,
                                                   _ dst: UnsafeMutablePointer<Float>, _: T.Type) {
    let size = MemoryLayout<T>.size
    for i in 0..<n {
        dst[i] = Float(T(littleEndian: src.loadUnaligned(fromByteOffset: i &* size, as: T.self)))
    }
}
