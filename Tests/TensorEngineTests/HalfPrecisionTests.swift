import XCTest
@testable import TensorEngine

/// Float32 <-> F16 / BF16: the scalar reference against torch and numpy on fixed vectors, the
/// buffer kernels (F16C where the CPU has it) against the reference, and HalfTensor.
final class HalfPrecisionTests: XCTestCase {
    /// (Float32 bits, torch `.half()` bits (numpy's astype(float16) agrees), torch `.bfloat16()`
    /// bits), from `python3 tools/make_half_vectors.py` (torch 2.x, numpy 2.x). Rows with a NaN
    /// input expect "some NaN" for BF16: torch itself gives 0x7FC0 (scalar) or 0xFFFF (its
    /// vectorised path, these rows) there.
    static let vectors: [(UInt32, UInt16, UInt16)] = [
        (0x00000000, 0x0000, 0x0000),
        (0x80000000, 0x8000, 0x8000),
        (0x3F800000, 0x3C00, 0x3F80),
        (0xBF800000, 0xBC00, 0xBF80),
        (0x3F801000, 0x3C00, 0x3F80),
        (0x3F803000, 0x3C02, 0x3F80),
        (0x3F801001, 0x3C01, 0x3F80),
        (0x3F800FFF, 0x3C00, 0x3F80),
        (0x3F808000, 0x3C04, 0x3F80),
        (0x3F818000, 0x3C0C, 0x3F82),
        (0x3F808001, 0x3C04, 0x3F81),
        (0x3F807FFF, 0x3C04, 0x3F80),
        (0x477FE000, 0x7BFF, 0x4780),
        (0x477FEFFF, 0x7BFF, 0x4780),
        (0x477FF000, 0x7C00, 0x4780),
        (0x47800000, 0x7C00, 0x4780),
        (0x7F7FFFFF, 0x7C00, 0x7F80),
        (0xFF7FFFFF, 0xFC00, 0xFF80),
        (0x7F7F7FFF, 0x7C00, 0x7F7F),
        (0x7F7F8000, 0x7C00, 0x7F80),
        (0x38800000, 0x0400, 0x3880),
        (0x387FC000, 0x03FF, 0x3880),
        (0x33800000, 0x0001, 0x3380),
        (0x33000000, 0x0000, 0x3300),
        (0x33000001, 0x0001, 0x3300),
        (0x33C00000, 0x0002, 0x33C0),
        (0x34200000, 0x0002, 0x3420),
        (0x34400000, 0x0003, 0x3440),
        (0xB3800000, 0x8001, 0xB380),
        (0x36000000, 0x0020, 0x3600),
        (0x3680A000, 0x0040, 0x3681),
        (0x00000001, 0x0000, 0x0000),
        (0x807FFFFF, 0x8000, 0x8080),
        (0x00400000, 0x0000, 0x0040),
        (0x7F800000, 0x7C00, 0x7F80),
        (0xFF800000, 0xFC00, 0xFF80),
        (0x7FC00000, 0x7E00, 0xFFFF),
        (0xFFC00000, 0xFE00, 0xFFFF),
        (0x40490FDB, 0x4248, 0x4049),
        (0xC2F6E979, 0xD7B7, 0xC2F7),
        (0x3DCCCCCD, 0x2E66, 0x3DCD),
        (0x461C4000, 0x70E2, 0x461C),
        (0x3E2AAAAB, 0x3155, 0x3E2B),
    ]

    static func isNaN16(_ h: UInt16, _ format: HalfFormat) -> Bool {
        format == .float16 ? (h & 0x7C00 == 0x7C00 && h & 0x03FF != 0) : (h & 0x7F80 == 0x7F80 && h & 0x007F != 0)
    }

    func testScalarRoundingMatchesTorchAndNumpy() {
        for (bits, f16, bf16) in Self.vectors {
            let x = Float(bitPattern: bits)
            XCTAssertEqual(HalfPrecision.float16Bits(from: x), f16, String(format: "F16 of 0x%08X", bits))
            if x.isNaN {
                XCTAssertTrue(Self.isNaN16(HalfPrecision.bfloat16Bits(from: x), .bfloat16))
            } else {
                XCTAssertEqual(HalfPrecision.bfloat16Bits(from: x), bf16, String(format: "BF16 of 0x%08X", bits))
            }
        }
    }

    func testBufferKernelsMatchTorchOnTheFixedVectors() {
        let xs = Self.vectors.map { Float(bitPattern: $0.0) }
        for format in HalfFormat.allCases {
            var out = [UInt16](repeating: 0, count: xs.count)
            xs.withUnsafeBufferPointer { s in out.withUnsafeMutableBufferPointer { HalfPrecision.round(s, to: format, into: $0) } }
            for (i, (bits, f16, bf16)) in Self.vectors.enumerated() {
                let want = format == .float16 ? f16 : bf16
                if xs[i].isNaN && format == .bfloat16 {
                    XCTAssertTrue(Self.isNaN16(out[i], format))
                } else {
                    XCTAssertEqual(out[i], want, String(format: "%@ of 0x%08X", format.rawValue, bits))
                }
            }
        }
    }

    /// Every 16-bit pattern expands exactly: the kernel equals the reference, and F16 values
    /// round back to themselves (NaNs stay NaN with their sign).
    func testExpansionOfEveryBitPatternMatchesReference() {
        let all = (0...UInt16.max).map { $0 }
        for format in HalfFormat.allCases {
            let reference = Reference.expandHalf(all, format: format)
            var fast = [Float](repeating: 0, count: all.count)
            all.withUnsafeBufferPointer { s in fast.withUnsafeMutableBufferPointer { HalfPrecision.expand(s, format: format, into: $0) } }
            var back = [UInt16](repeating: 0, count: all.count)
            fast.withUnsafeBufferPointer { s in back.withUnsafeMutableBufferPointer { HalfPrecision.round(s, to: format, into: $0) } }
            for i in all.indices {
                if reference[i].isNaN {
                    XCTAssertTrue(fast[i].isNaN && fast[i].sign == reference[i].sign, "\(format) \(i)")
                    XCTAssertTrue(Self.isNaN16(back[i], format) && back[i] & 0x8000 == all[i] & 0x8000, "\(format) \(i)")
                } else {
                    XCTAssertEqual(fast[i].bitPattern, reference[i].bitPattern, "\(format) \(i)")
                    XCTAssertEqual(back[i], all[i], "\(format) \(i) round trip")
                }
            }
        }
        // Spot values: F16 min subnormal, max, BF16 of 1.
        XCTAssertEqual(HalfPrecision.float(fromFloat16Bits: 0x0001), Float(sign: .plus, exponent: -24, significand: 1))
        XCTAssertEqual(HalfPrecision.float(fromFloat16Bits: 0x7BFF), 65504)
        XCTAssertEqual(HalfPrecision.float(fromBFloat16Bits: 0x3F80), 1)
    }

    /// Rounding kernel against the reference on random bit patterns (every exponent, NaNs and
    /// subnormals included), values near the F16 range, and every length from 0 to 40 (the
    /// F16C path converts 8 at a time and the tail through a scratch vector).
    func testRoundingKernelMatchesReference() {
        var g = RandomGenerator(seed: 7)
        var xs: [Float] = (0..<200_000).map { _ in Float(bitPattern: g.nextUInt32()) }
        xs += (0..<200_000).map { _ in Float(bitPattern: 0x3000_0000 &+ g.nextUInt32() % 0x1800_0000) }
        xs += (0..<200_000).map { _ in Float(bitPattern: 0xB000_0000 &+ g.nextUInt32() % 0x1800_0000) }
        for format in HalfFormat.allCases {
            let reference = Reference.roundHalf(xs, format: format)
            for n in Array(0...40) + [xs.count] {
                var fast = [UInt16](repeating: 0xAAAA, count: n)
                xs.withUnsafeBufferPointer { s in
                    fast.withUnsafeMutableBufferPointer { HalfPrecision.round(UnsafeBufferPointer(rebasing: s[0..<n]), to: format, into: $0) }
                }
                for i in 0..<n where fast[i] != reference[i] {
                    // F16C keeps a NaN's payload bits, the reference does not: both quiet NaNs, same sign.
                    let ok = xs[i].isNaN && Self.isNaN16(fast[i], format) && Self.isNaN16(reference[i], format)
                        && fast[i] & 0x8000 == reference[i] & 0x8000
                    XCTAssertTrue(ok, String(format: "%@ n %d i %d: 0x%08X -> 0x%04X, reference 0x%04X", format.rawValue, n, i,
                                             xs[i].bitPattern, fast[i], reference[i]))
                    if !ok { return }
                }
            }
        }
        print("HalfPrecision.usesHardwareFloat16: \(HalfPrecision.usesHardwareFloat16)")
    }

    func testHalfTensorRoundsExpandsAndLooksUpRows() {
        var g = RandomGenerator(seed: 3)
        let x = Tensor.randn([5, 7], generator: &g)
        for format in HalfFormat.allCases {
            let h = HalfTensor(rounding: x, to: format)
            XCTAssertEqual(h.byteCount, 70)
            let back = h.float()
            XCTAssertEqual(back.shape, [5, 7])
            let bits = Reference.roundHalf(x.scalars, format: format)
            XCTAssertEqual(back.scalars, Reference.expandHalf(bits, format: format))
            // Relative error of rounding: at most 2^-11 (F16) or 2^-8 (BF16) for normal values.
            let bound: Float = format == .float16 ? 1.0 / 2048 : 1.0 / 256
            for i in 0..<x.count { XCTAssertLessThanOrEqual(abs(back.pointer[i] - x.pointer[i]), bound * abs(x.pointer[i])) }
            let ids = Tensor(shape: [2, 2], [4, 0, 2, 4])
            XCTAssertEqual(h.embedding(indices: ids).scalars, Tensor.embedding(indices: ids, weight: back).scalars)
            XCTAssertEqual(h.embedding(indices: ids).shape, [2, 2, 7])
        }
    }
}
