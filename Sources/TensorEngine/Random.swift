import Foundation

// Seeded, counter-based random numbers: the Philox 4x32-10 block function, a value-type generator
// built on it, and tensor factories (`Tensor.randn`, `rand`, `uniform`, `randint`).
//
// Why counter-based: a Philox output block is a pure function of (key, counter), so element i of
// a bulk draw can be computed from i alone. Bulk fills are therefore split over threads freely and
// give the same numbers for any `Engine.threads`, and a draw can be replayed from a saved
// generator value (dropout recomputes its mask in the backward pass this way).

// MARK: - Philox 4x32-10

/// The Philox 4x32-10 block function of Salmon, Moraes, Dror and Shaw, "Parallel random numbers:
/// as easy as 1, 2, 3" (SC 2011), exactly as in the Random123 library (`philox4x32_R` with R = 10
/// and the default multipliers and Weyl constants): a 64-bit key (two 32-bit words) and a 128-bit
/// counter (four 32-bit words) map to four 32-bit output words.
///
/// It matches Random123's known-answer vectors (`kat_vectors`, philox4x32 10), for example
/// counter 0, key 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8. A 64-bit seed becomes the key as
/// (low 32 bits, high 32 bits); `block(offset:stream:)` puts the block offset in counter words 0-1
/// and the stream in words 2-3 (low word first), the layout cuRAND's `curand_init(seed,
/// subsequence, 4 * offset)` uses for its Philox4_32_10 state (that correspondence is by design,
/// not tested here against cuRAND).
public struct Philox4x32: Sendable, Hashable {
    /// Round multipliers (Random123 `PHILOX_M4x32_0`, `PHILOX_M4x32_1`).
    public static let multipliers: SIMD2<UInt32> = SIMD2(0xD251_1F53, 0xCD9E_8D57)
    /// Key increments between rounds (Random123 `PHILOX_W32_0`, `PHILOX_W32_1`: golden ratio, sqrt(3)-1).
    public static let weylIncrements: SIMD2<UInt32> = SIMD2(0x9E37_79B9, 0xBB67_AE85)
    /// Rounds per block.
    public static let rounds = 10

    /// The key: (k0, k1).
    public var key: SIMD2<UInt32>

    public init(key: SIMD2<UInt32>) { self.key = key }

    /// Key (low 32 bits of `seed`, high 32 bits of `seed`).
    public init(seed: UInt64) {
        key = SIMD2(UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32))
    }

    /// The four output words for a 128-bit counter (c0, c1, c2, c3).
    public func block(counter: SIMD4<UInt32>) -> SIMD4<UInt32> {
        let r = philox4x32_10(counter[0], counter[1], counter[2], counter[3], key[0], key[1])
        return SIMD4(r.0, r.1, r.2, r.3)
    }

    /// The block at counter (offset low, offset high, stream low, stream high).
    public func block(offset: UInt64, stream: UInt64) -> SIMD4<UInt32> {
        block(counter: SIMD4(UInt32(truncatingIfNeeded: offset), UInt32(truncatingIfNeeded: offset >> 32),
                             UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)))
    }
}

/// Philox 4x32-10 on scalars (the hot path; a tuple keeps everything in registers).
@inline(__always)
func philox4x32_10(_ c0: UInt32, _ c1: UInt32, _ c2: UInt32, _ c3: UInt32,
                   _ key0: UInt32, _ key1: UInt32) -> (UInt32, UInt32, UInt32, UInt32) {
    var x0 = c0, x1 = c1, x2 = c2, x3 = c3, k0 = key0, k1 = key1
    for round in 0..<10 {
        if round > 0 { k0 &+= 0x9E37_79B9; k1 &+= 0xBB67_AE85 }
        let p0 = UInt64(x0) &* 0xD251_1F53
        let p1 = UInt64(x2) &* 0xCD9E_8D57
        let y0 = UInt32(truncatingIfNeeded: p1 >> 32) ^ x1 ^ k0
        let y1 = UInt32(truncatingIfNeeded: p1)
        let y2 = UInt32(truncatingIfNeeded: p0 >> 32) ^ x3 ^ k1
        let y3 = UInt32(truncatingIfNeeded: p0)
        x0 = y0; x1 = y1; x2 = y2; x3 = y3
    }
    return (x0, x1, x2, x3)
}

/// One generator's key and stream, unpacked for kernels: block(i) is Philox at counter
/// (i low, i high, stream low, stream high).
struct PhiloxStream {
    let k0: UInt32, k1: UInt32, s0: UInt32, s1: UInt32

    init(seed: UInt64, stream: UInt64) {
        k0 = UInt32(truncatingIfNeeded: seed); k1 = UInt32(truncatingIfNeeded: seed >> 32)
        s0 = UInt32(truncatingIfNeeded: stream); s1 = UInt32(truncatingIfNeeded: stream >> 32)
    }

    @inline(__always)
    func block(_ index: UInt64) -> (UInt32, UInt32, UInt32, UInt32) {
        philox4x32_10(UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32), s0, s1, k0, k1)
    }
}

// MARK: - Conversions from random words

/// 2^-24, 2^-32 and friends, as exact Float constants.
let twoPow24Inv: Float = 0x1p-24
let twoPow32Inv: Float = 0x1p-32
let twoPow32Inv2Pi: Float = 2 * Float.pi * 0x1p-32

@inline(__always)
func unitFloat24(_ w: UInt32) -> Float { Float(w >> 8) * twoPow24Inv }

/// low + span * u, kept below `high` (rounding can otherwise land exactly on it).
@inline(__always)
func scaledUniform(_ w: UInt32, _ low: Float, _ span: Float, _ high: Float, _ below: Float) -> Float {
    let v = low + span * unitFloat24(w)
    return v < high ? v : below
}

@inline(__always)
func boxMuller(_ a: UInt32, _ b: UInt32) -> (Float, Float) {
    let u = Float(a) * twoPow32Inv + 0x1p-33          // (0, 1]
    let theta = Float(b) * twoPow32Inv2Pi + Float.pi * 0x1p-32  // (0, 2 pi]
    let r = (-2 * Foundation.log(u)).squareRoot()
    return (r * Foundation.sin(theta), r * Foundation.cos(theta))
}

/// Lemire's multiply-shift with rejection (Lemire 2019, "Fast random integer generation in an
/// interval"): candidate x from words (2h, 2h+1) of `block` (low word first); if rejected, the
/// next candidate comes from the same words of Philox(key, previous block as counter).
@inline(__always)
func boundedDraw(_ n: UInt64, _ block: (UInt32, UInt32, UInt32, UInt32), half: Int,
                 _ k0: UInt32, _ k1: UInt32) -> UInt64 {
    let x = half == 0 ? UInt64(block.0) | UInt64(block.1) << 32 : UInt64(block.2) | UInt64(block.3) << 32
    let m = x.multipliedFullWidth(by: n)
    if m.low >= n { return m.high }  // fast accept: the threshold (2^64 mod n) is below n
    return boundedDrawSlow(n, block, half: half, k0, k1)
}

@inline(never)
func boundedDrawSlow(_ n: UInt64, _ block: (UInt32, UInt32, UInt32, UInt32), half: Int,
                     _ k0: UInt32, _ k1: UInt32) -> UInt64 {
    let threshold = (0 &- n) % n  // 2^64 mod n
    var b = block
    while true {
        let x = half == 0 ? UInt64(b.0) | UInt64(b.1) << 32 : UInt64(b.2) | UInt64(b.3) << 32
        let m = x.multipliedFullWidth(by: n)
        if m.low >= threshold { return m.high }
        b = philox4x32_10(b.0, b.1, b.2, b.3, k0, k1)
    }
}

// MARK: - RandomGenerator

/// An explicitly seeded random number generator on Philox 4x32-10 (see `Philox4x32`). It is a
/// small value type: copy it to save or replay a position, pass it `inout` to draw.
///
/// State: `seed` (the Philox key: low word, high word), `stream` (counter words 2-3), and
/// `offset`, the index of the next unused 128-bit block (counter words 0-1). Block k of the
/// generator is `Philox4x32(seed: seed).block(offset: k, stream: stream)`, four words w0...w3.
///
/// **How counters are consumed.** Every draw of n elements (a scalar draw is a draw of one
/// element) uses the blocks `offset ..< offset + B` and then advances `offset` by B, so
/// consecutive draws never share a block. Element i depends only on i and the generator value at
/// the start of the draw, never on thread count or chunking:
///
/// | draw                               | element i uses                         | B           |
/// |------------------------------------|----------------------------------------|-------------|
/// | uniform (`rand`, `uniform`, `nextFloat`) | word i % 4 of block offset + i / 4 | ceil(n / 4) |
/// | normal (`randn`, `nextNormal`)     | words (0,1) or (2,3) of block offset + i / 4 (see below) | ceil(n / 4) |
/// | integer (`randint`, `nextInt`)     | words (2h, 2h+1), h = i % 2, of block offset + i / 2 | ceil(n / 2) |
/// | `permutation`, `shuffle` (n items) | draw k = 0 ..< n-1 is integer element k | ceil((n-1) / 2) |
/// | `nextUInt32` / `nextUInt64`        | w0 / w0 + 2^32 w1                      | 1           |
///
/// So a draw of 8 normals followed by a draw of 4 gives the same 12 numbers as one draw of 12 (a
/// draw that is not a multiple of 4 wastes the rest of its last block).
///
/// **Conversions.**
/// - Uniform [0, 1): `Float(w >> 8) * 2^-24`, the top 24 bits, so every value is an exact multiple
///   of 2^-24 and the largest is 1 - 2^-24 (never 1).
/// - Uniform [low, high): `low + (high - low) * u`; a result that rounds up to `high` becomes
///   `high.nextDown`, so `high` is never returned.
/// - Standard normal, Box-Muller on a word pair (a, b), both outputs used, in Float arithmetic:
///   u = a * 2^-32 + 2^-33 in (0, 1], theta = b * 2pi * 2^-32 + pi * 2^-32, r = sqrt(-2 ln u);
///   elements 4k, 4k+1 are r sin(theta), r cos(theta) of pair (w0, w1) of block k, and elements
///   4k+2, 4k+3 the same of pair (w2, w3). (The formula of cuRAND's `curand_normal`, computed here
///   with libm's logf/sinf/cosf, so not bit-identical to a GPU; 32-bit u keeps the tail out to about
///   6.8 sigma.) With `mean`/`std`: mean + std * z.
/// - Integer in 0 ..< n: Lemire's multiply-shift with rejection, unbiased: x = the 64-bit word
///   pair (low word first), result = floor(x n / 2^64), rejected when (x n mod 2^64) < (2^64 mod n);
///   a rejected candidate is replaced by the same word pair of Philox(key, previous block's four
///   words as counter), repeatedly. For n <= 2^24 rejection happens with probability < 2^-40.
///
/// **What it does not match.** It does not reproduce PyTorch's CPU generator (mt19937) or its
/// `torch.randn` streams on any device, NumPy, or JAX (whose default is Threefry); same seed in
/// those libraries gives different numbers. It matches Philox 4x32-10 per Random123 bit for bit.
///
/// **Streams.** Generators with the same seed and different `stream` values are independent
/// sequences (different counters under one key). `derived(_:)` hashes (stream, tag) into a new
/// stream so subsystems (dropout, noise, data order) can each take their own without
/// coordinating numbers.
public struct RandomGenerator: Sendable, Hashable {
    /// The Philox key (low 32 bits = k0, high 32 bits = k1).
    public var seed: UInt64
    /// Counter words 2-3 (low word first): which independent sequence.
    public var stream: UInt64
    /// The next unused block (counter words 0-1). Wraps after 2^64 blocks.
    public var offset: UInt64

    public init(seed: UInt64, stream: UInt64 = 0, offset: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
        self.offset = offset
    }

    /// The block function for this generator's key.
    public var philox: Philox4x32 { Philox4x32(seed: seed) }

    /// A generator with the same seed on the stream hash(stream, tag), at offset 0. It depends only
    /// on (seed, stream, tag), not on `offset` or on what was drawn, so `g.derived(1)` is the same
    /// generator before and after drawing from `g`; different tags, and different parent streams,
    /// give different streams (the hash is SplitMix64's finaliser, applied twice: two streams
    /// coincide with probability about 2^-64).
    public func derived(_ tag: UInt64) -> RandomGenerator {
        RandomGenerator(seed: seed, stream: splitMix64(splitMix64(stream) ^ tag))
    }

    /// Skips `blocks` blocks (as a draw that used them would).
    public mutating func skip(blocks: UInt64) { offset &+= blocks }

    /// Block `offset + index` of this generator (does not advance).
    public func block(at index: UInt64) -> SIMD4<UInt32> {
        philox.block(offset: offset &+ index, stream: stream)
    }

    /// The next block's four words; advances by one block.
    public mutating func nextBlock() -> SIMD4<UInt32> {
        defer { offset &+= 1 }
        return block(at: 0)
    }

    /// Word 0 of the next block; advances by one block.
    public mutating func nextUInt32() -> UInt32 { nextBlock()[0] }

    /// Words 0 (low) and 1 (high) of the next block; advances by one block.
    public mutating func nextUInt64() -> UInt64 {
        let b = nextBlock()
        return UInt64(b[0]) | UInt64(b[1]) << 32
    }

    /// Uniform in [0, 1) from 24 bits; element 0 of a uniform draw (one block).
    public mutating func nextFloat() -> Float { unitFloat24(nextUInt32()) }

    /// Uniform in [low, high); element 0 of a uniform draw (one block).
    public mutating func nextFloat(low: Float, high: Float) -> Float {
        let span = RandomGenerator.checkedSpan(low, high, op: "nextFloat")
        return scaledUniform(nextUInt32(), low, span, high, high.nextDown)
    }

    /// Standard normal; element 0 of a normal draw (r sin(theta) of words 0-1; one block).
    public mutating func nextNormal() -> Float {
        let b = nextBlock()
        return boxMuller(b[0], b[1]).0
    }

    /// Uniform integer in 0 ..< upperBound without bias; element 0 of an integer draw (one block).
    public mutating func nextInt(upperBound: Int) -> Int {
        precondition(upperBound > 0, "nextInt: upperBound must be positive, got \(upperBound)")
        let s = PhiloxStream(seed: seed, stream: stream)
        let b = s.block(offset)
        offset &+= 1
        return Int(boundedDraw(UInt64(upperBound), b, half: 0, s.k0, s.k1))
    }

    // MARK: Bulk draws

    /// Fills `buffer` with uniform values in [low, high) (element i: word i % 4 of block
    /// offset + i / 4); advances by ceil(count / 4) blocks. In parallel; thread-count independent.
    public mutating func fillUniform(_ buffer: UnsafeMutableBufferPointer<Float>, low: Float = 0, high: Float = 1) {
        let span = RandomGenerator.checkedSpan(low, high, op: "fillUniform")
        let below = high.nextDown
        guard let dst = buffer.baseAddress, buffer.count > 0 else { return }
        let n = buffer.count
        let s = PhiloxStream(seed: seed, stream: stream), base = offset
        let blocks = (n + 3) / 4
        parallelFor(blocks, grain: 8192) { range in
            for k in range {
                let w = s.block(base &+ UInt64(k))
                let o = dst + 4 * k
                if 4 * k + 4 <= n {
                    o[0] = scaledUniform(w.0, low, span, high, below)
                    o[1] = scaledUniform(w.1, low, span, high, below)
                    o[2] = scaledUniform(w.2, low, span, high, below)
                    o[3] = scaledUniform(w.3, low, span, high, below)
                } else {
                    let words = [w.0, w.1, w.2, w.3]
                    for j in 0..<(n - 4 * k) { o[j] = scaledUniform(words[j], low, span, high, below) }
                }
            }
        }
        offset &+= UInt64(blocks)
    }

    /// Fills `buffer` with the values of `buffer.count` successive `nextFloat(low:high:)` calls
    /// (element i: word 0 of block offset + i); advances by count blocks. In parallel.
    mutating func fillUniformOnePerBlock(_ buffer: UnsafeMutableBufferPointer<Float>, low: Float, high: Float) {
        let span = RandomGenerator.checkedSpan(low, high, op: "fillUniform")
        let below = high.nextDown
        guard let dst = buffer.baseAddress, buffer.count > 0 else { return }
        let s = PhiloxStream(seed: seed, stream: stream), base = offset
        parallelFor(buffer.count, grain: 8192) { range in
            for i in range { dst[i] = scaledUniform(s.block(base &+ UInt64(i)).0, low, span, high, below) }
        }
        offset &+= UInt64(buffer.count)
    }

    /// Fills `buffer` with normal values mean + std * z (element i: block offset + i / 4, see the
    /// type's documentation); advances by ceil(count / 4) blocks. In parallel; thread-count
    /// independent.
    public mutating func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Float = 0, std: Float = 1) {
        guard let dst = buffer.baseAddress, buffer.count > 0 else { return }
        let n = buffer.count
        let s = PhiloxStream(seed: seed, stream: stream), base = offset
        let blocks = (n + 3) / 4
        let plain = mean == 0 && std == 1
        parallelFor(blocks, grain: 4096) { range in
            for k in range {
                let w = s.block(base &+ UInt64(k))
                var (z0, z1) = boxMuller(w.0, w.1)
                var (z2, z3) = boxMuller(w.2, w.3)
                if !plain {
                    z0 = mean + std * z0; z1 = mean + std * z1
                    z2 = mean + std * z2; z3 = mean + std * z3
                }
                let o = dst + 4 * k
                if 4 * k + 4 <= n {
                    o[0] = z0; o[1] = z1; o[2] = z2; o[3] = z3
                } else {
                    let z = [z0, z1, z2, z3]
                    for j in 0..<(n - 4 * k) { o[j] = z[j] }
                }
            }
        }
        offset &+= UInt64(blocks)
    }

    /// Fills `buffer` with integers in 0 ..< upperBound as Float (upperBound <= 2^24, so every value
    /// is exact); element i: words (2h, 2h+1), h = i % 2, of block offset + i / 2. Advances by
    /// ceil(count / 2) blocks. In parallel; thread-count independent.
    public mutating func fillIntegers(_ buffer: UnsafeMutableBufferPointer<Float>, upperBound: Int) {
        precondition(upperBound > 0 && upperBound <= 1 << 24,
                     "fillIntegers: upperBound must be in 1...2^24 (exact in Float), got \(upperBound)")
        fillBounded(buffer.count) { i, v in buffer[i] = Float(v) } bound: { _ in UInt64(upperBound) }
    }

    /// `count` integers in 0 ..< upperBound (same counter rule as `fillIntegers`, any positive bound).
    public mutating func integers(count: Int, upperBound: Int) -> [Int] {
        precondition(upperBound > 0, "integers: upperBound must be positive, got \(upperBound)")
        precondition(count >= 0, "integers: negative count \(count)")
        var out = [Int](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { buf in
            fillBounded(count) { i, v in buf[i] = Int(v) } bound: { _ in UInt64(upperBound) }
        }
        return out
    }

    /// `count` uniform values in [low, high) (as `fillUniform`).
    public mutating func uniforms(count: Int, low: Float = 0, high: Float = 1) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { fillUniform($0, low: low, high: high) }
        return out
    }

    /// `count` normal values (as `fillNormal`).
    public mutating func normals(count: Int, mean: Float = 0, std: Float = 1) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { fillNormal($0, mean: mean, std: std) }
        return out
    }

    /// Shuffles `collection` uniformly (Fisher-Yates from the back): for k = 0 ..< n-1, i = n-1-k
    /// is swapped with j = integer draw element k with bound i + 1. Advances by ceil((n-1) / 2)
    /// blocks (none for n <= 1).
    public mutating func shuffle<C: MutableCollection & RandomAccessCollection>(_ collection: inout C) {
        let n = collection.count
        guard n > 1 else { return }
        let s = PhiloxStream(seed: seed, stream: stream), base = offset
        let start = collection.startIndex
        for k in 0..<(n - 1) {
            let i = n - 1 - k
            let b = s.block(base &+ UInt64(k / 2))
            let j = Int(boundedDraw(UInt64(i + 1), b, half: k % 2, s.k0, s.k1))
            if j != i {
                collection.swapAt(collection.index(start, offsetBy: i), collection.index(start, offsetBy: j))
            }
        }
        offset &+= UInt64(n / 2)  // ceil((n - 1) / 2)
    }

    /// A uniformly random permutation of 0 ..< n: `shuffle` applied to [0, 1, ..., n-1].
    public mutating func permutation(_ n: Int) -> [Int] {
        precondition(n >= 0, "permutation: negative size \(n)")
        var p = Array(0..<n)
        shuffle(&p)
        return p
    }

    // MARK: Exact conversions (public so the rules can be checked)

    /// The uniform [0, 1) value of a word: `Float(word >> 8) * 2^-24`.
    public static func unitFloat(_ word: UInt32) -> Float { unitFloat24(word) }

    /// The uniform [low, high) value of a word (see the type's documentation).
    public static func uniformFloat(_ word: UInt32, low: Float, high: Float) -> Float {
        scaledUniform(word, low, checkedSpan(low, high, op: "uniformFloat"), high, high.nextDown)
    }

    /// The Box-Muller pair of two words: (r sin(theta), r cos(theta)).
    public static func normalPair(_ a: UInt32, _ b: UInt32) -> (Float, Float) { boxMuller(a, b) }

    // MARK: Internals

    static func checkedSpan(_ low: Float, _ high: Float, op: String) -> Float {
        precondition(low < high, "\(op): low \(low) must be below high \(high)")
        let span = high - low
        precondition(span.isFinite, "\(op): range [\(low), \(high)) is too wide for Float")
        return span
    }

    /// Integer draw of `count` elements with per-element bounds; `store(i, value)` must write
    /// disjoint places for distinct i.
    @inline(__always)
    mutating func fillBounded(_ count: Int, store: (Int, UInt64) -> Void, bound: (Int) -> UInt64) {
        guard count > 0 else { return }
        let s = PhiloxStream(seed: seed, stream: stream), base = offset
        let blocks = (count + 1) / 2
        parallelFor(blocks, grain: 8192) { range in
            for k in range {
                let b = s.block(base &+ UInt64(k))
                let i = 2 * k
                store(i, boundedDraw(bound(i), b, half: 0, s.k0, s.k1))
                if i + 1 < count { store(i + 1, boundedDraw(bound(i + 1), b, half: 1, s.k0, s.k1)) }
            }
        }
        offset &+= UInt64(blocks)
    }
}

/// SplitMix64's output function (Steele, Lea, Flood 2014) on x + golden gamma.
@inline(__always)
func splitMix64(_ x: UInt64) -> UInt64 {
    var z = x &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

// MARK: - Tensor factories

extension Tensor {
    /// Standard normal values (or mean + std * z), drawn as `RandomGenerator.fillNormal`: element i
    /// (row-major) uses block generator.offset + i / 4; the generator advances by ceil(count / 4)
    /// blocks. Same numbers for any `Engine.threads`.
    public static func randn(_ shape: [Int], mean: Float = 0, std: Float = 1,
                             generator: inout RandomGenerator, requiresGrad: Bool = false) -> Tensor {
        let out = Engine.backend.randomNormal(shape, mean: mean, std: std, generator: generator)
        generator.skip(blocks: UInt64((out.count + 3) / 4))
        out.requiresGrad = requiresGrad
        return out
    }

    /// Uniform values in [0, 1) with 24 random bits each (element i: word i % 4 of block
    /// generator.offset + i / 4; advances ceil(count / 4) blocks).
    public static func rand(_ shape: [Int], generator: inout RandomGenerator, requiresGrad: Bool = false) -> Tensor {
        uniform(shape, low: 0, high: 1, generator: &generator, requiresGrad: requiresGrad)
    }

    /// Uniform values in [low, high) (same counters as `rand`; never exactly `high`). With
    /// `layout: .onePerBlock`, element i is instead word 0 of block generator.offset + i, so the
    /// values are those of count successive `generator.nextFloat(low:high:)` calls, and the
    /// generator advances by count blocks (for code that drew scalars one at a time).
    public static func uniform(_ shape: [Int], low: Float, high: Float, generator: inout RandomGenerator,
                               layout: RandomLayout = .packed, requiresGrad: Bool = false) -> Tensor {
        _ = RandomGenerator.checkedSpan(low, high, op: "uniform")
        let out = Engine.backend.randomUniform(shape, low: low, high: high, generator: generator, layout: layout)
        generator.skip(blocks: UInt64(layout.blocks(out.count)))
        out.requiresGrad = requiresGrad
        return out
    }

    /// Integers in 0 ..< upperBound as Float values, unbiased (upperBound in 1...2^24; element i:
    /// words (2h, 2h+1), h = i % 2, of block generator.offset + i / 2; advances ceil(count / 2) blocks).
    public static func randint(_ shape: [Int], upperBound: Int, generator: inout RandomGenerator) -> Tensor {
        precondition(upperBound > 0 && upperBound <= 1 << 24,
                     "randint: upperBound must be in 1...2^24 (exact in Float), got \(upperBound)")
        let out = Engine.backend.randomIntegers(shape, upperBound: upperBound, generator: generator)
        generator.skip(blocks: UInt64((out.count + 1) / 2))
        return out
    }
}

// MARK: - CPU kernels

extension CPUBackend {
    public func randomUniform(_ shape: [Int], low: Float, high: Float, generator: RandomGenerator,
                              layout: RandomLayout) -> Tensor {
        let out = Tensor.uninitialized(shape)
        var g = generator
        switch layout {
        case .packed: g.fillUniform(out.storage.buffer, low: low, high: high)
        case .onePerBlock: g.fillUniformOnePerBlock(out.storage.buffer, low: low, high: high)
        }
        return out
    }

    public func randomNormal(_ shape: [Int], mean: Float, std: Float, generator: RandomGenerator) -> Tensor {
        let out = Tensor.uninitialized(shape)
        var g = generator
        g.fillNormal(out.storage.buffer, mean: mean, std: std)
        return out
    }

    public func randomIntegers(_ shape: [Int], upperBound: Int, generator: RandomGenerator) -> Tensor {
        let out = Tensor.uninitialized(shape)
        var g = generator
        g.fillIntegers(out.storage.buffer, upperBound: upperBound)
        return out
    }
}
