import TensorEngine
import XCTest

/// An item's result must not depend on the batch it is computed in: cross-image batching pools
/// the items of several images into one call, and results must stay identical bit for bit for
/// any number of images in flight, shard split or batch size. Each case computes a batch, then
/// single items alone, a reversed batch and a batch padded with other items, and compares every
/// item's output bits. The shapes are the shipped Fashion-MNIST U-Net's (28x28, 14x14 and 7x7 at
/// 32, 64 and 96 channels) and some of Stable Diffusion's widths (K = 512 and 1280 reach BLAS's
/// small-matrix kernels at small batches).
final class BatchIndependenceTests: XCTestCase {
    func bits(_ t: Tensor) -> [UInt32] { t.scalars.map(\.bitPattern) }

    /// op applied to batches of `x` [n, ...] must give each item the bits it gets alone.
    func checkItems(_ name: String, _ x: Tensor, file: StaticString = #filePath, line: UInt = #line, _ op: (Tensor) -> Tensor) {
        let n = x.shape[0]
        let together = bits(op(x))
        let per = together.count / n
        func item(_ all: [UInt32], _ i: Int) -> ArraySlice<UInt32> { all[(i * per)..<((i + 1) * per)] }
        for i in Set([0, 1, n / 2, n - 1]) where i < n {
            let alone = bits(op(x.gatherRows([i])))
            XCTAssertEqual(alone[...], item(together, i), "\(name): item \(i) alone differs from its batch of \(n)", file: file, line: line)
        }
        let reversed = bits(op(x.gatherRows(Array((0..<n).reversed()))))
        for i in 0..<n where item(reversed, n - 1 - i) != item(together, i) {
            XCTFail("\(name): item \(i) differs when the batch is reversed", file: file, line: line)
            break
        }
        // The first three items inside a larger batch of others.
        var g = RandomGenerator(seed: 99)
        let others = Tensor.randn([2 * n + 5] + Array(x.shape.dropFirst()), generator: &g)
        let mixed = bits(op(Tensor.concat([others.gatherRows(Array(0..<(n + 1))), x.gatherRows([0, 1, 2].filter { $0 < n }), others], axis: 0)))
        for i in [0, 1, 2] where i < n && item(mixed, n + 1 + i) != item(together, i) {
            XCTFail("\(name): item \(i) differs inside a larger mixed batch", file: file, line: line)
        }
    }

    func testConvolutionsDoNotDependOnTheBatch() {
        var g = RandomGenerator(seed: 1)
        // (input channels, size, output channels, kernel, stride, padding): Winograd at 28, 14 and 7
        // (7x7 ran im2col at batch 1 before), im2col for one channel in or out and stride 2, 1x1 on
        // the batched im2col path (14x14) and per image (28x28).
        let cases: [(Int, Int, Int, Int, Int, Int)] = [(32, 28, 32, 3, 1, 1), (64, 14, 64, 3, 1, 1), (96, 7, 96, 3, 1, 1),
                                                      (192, 7, 96, 3, 1, 1), (1, 28, 32, 3, 1, 1), (32, 28, 1, 3, 1, 1),
                                                      (32, 28, 32, 3, 2, 1), (64, 14, 64, 3, 2, 1), (160, 14, 64, 1, 1, 0),
                                                      (96, 28, 32, 1, 1, 0)]
        for (c, s, o, k, stride, pad) in cases {
            let w = Tensor.randn([o, c, k, k], generator: &g) * (1 / Float(c * k * k).squareRoot())
            let b = Tensor.randn([o], generator: &g)
            for n in [5, 37] {
                let x = Tensor.randn([n, c, s, s], generator: &g)
                checkItems("conv \(c)->\(o) \(k)x\(k)/\(stride) at \(s)x\(s), batch \(n)", x) { $0.conv2d(weight: w, bias: b, stride: stride, padding: pad) }
            }
        }
    }

    func testLinearLayersDoNotDependOnTheBatch() {
        var g = RandomGenerator(seed: 2)
        for (inF, outF) in [(32, 128), (128, 128), (96, 288), (512, 512), (1280, 1280), (576, 64)] {
            let w = Tensor.randn([outF, inF], generator: &g), b = Tensor.randn([outF], generator: &g)
            for n in [3, 40, 700] {
                let x = Tensor.randn([n, inF], generator: &g)
                checkItems("linear \(inF)->\(outF), batch \(n)", x) { $0.linear(weight: w, bias: b) }
                checkItems("matmul \(inF)x\(outF), batch \(n)", x) { $0.matmul(w.transposed()) }
            }
        }
    }
}
