import Diffusion
import DiffusionClassifier
import Foundation
import TensorEngine
import XCTest

/// Python's `list(range(start, stop, step))` and `xs[start::step][:n]`, written naively.
private func pyRange(_ start: Int, _ stop: Int, _ step: Int) -> [Int] {
    var out: [Int] = [], i = start
    while i < stop { out.append(i); i += step }
    return out
}

private func pySlice(_ xs: [Int], start: Int, step: Int) -> [Int] {
    var out: [Int] = [], i = start
    while i < xs.count { out.append(xs[i]); i += step }
    return out
}

final class TimestepTests: XCTestCase {
    let combos: [(Int, [Int])] = [(1000, [50, 500]), (1000, [20, 50, 100, 500]), (1000, [50, 100, 500, 1000]),
                                  (1000, [25, 250]), (100, [7, 30]), (37, [5, 11]), (1000, [3]), (10, [10, 1])]

    func testGridMatchesPythonExpressions() {
        for (T, ns) in combos {
            let maxN = ns.max()!
            let start = T / maxN / 2
            let expected = Array(pyRange(start, T, T / maxN).prefix(maxN))
            let grid = TimestepGrid.grid(T: T, maxN: maxN)
            XCTAssertEqual(grid, expected, "T=\(T) n=\(ns)")
            for n in ns {
                let len = expected.count
                XCTAssertEqual(TimestepGrid.stage(grid, n: n), Array(pySlice(expected, start: len / n / 2, step: len / n).prefix(n)),
                               "T=\(T) n=\(ns) stage \(n)")
            }
        }
    }

    func testGridLiteralsFromPython() {
        // Printed by python3 from the public code's expressions.
        let g = TimestepGrid.grid(T: 1000, maxN: 500)
        XCTAssertEqual(Array(g.prefix(6)), [1, 3, 5, 7, 9, 11])
        XCTAssertEqual(Array(TimestepGrid.stage(g, n: 50).prefix(5)), [11, 31, 51, 71, 91])
        XCTAssertEqual(Array(TimestepGrid.stage(g, n: 20).prefix(5)), [25, 75, 125, 175, 225])
        XCTAssertEqual(TimestepGrid.grid(T: 1000, maxN: 3), [166, 499, 832])
        let g2 = TimestepGrid.grid(T: 37, maxN: 11)
        XCTAssertEqual(Array(TimestepGrid.stage(g2, n: 5)), [4, 10, 16, 22, 28])
        // A sub-range is the same grid shifted.
        XCTAssertEqual(TimestepGrid.grid(range: 100..<200, maxN: 4), TimestepGrid.grid(T: 100, maxN: 4).map { $0 + 100 })
    }

    func testSamplers() throws {
        var g = RandomGenerator(seed: 3)
        let u = TimestepSampler.uniform(50).timesteps(range: 200..<300, generator: &g)
        XCTAssertEqual(u.count, 50)
        XCTAssertTrue(u.allSatisfy { (200..<300).contains($0) })
        let s = TimestepSampler.stratified(10).timesteps(range: 0..<1000, generator: &g)
        XCTAssertEqual(s.count, 10)
        for (k, t) in s.enumerated() { XCTAssertTrue((k * 100..<(k + 1) * 100).contains(t), "stratum \(k): \(t)") }
        XCTAssertEqual(TimestepSampler.explicit([5, 1, 900]).timesteps(range: 0..<1000, generator: &g), [5, 1, 900])
        XCTAssertThrowsError(try TimestepSampler.explicit([5, 1000]).validate(range: 0..<1000)) { e in
            XCTAssertTrue(names(e, .timesteps) && "\(e)".contains("1000"), "\(e)")
        }
        XCTAssertThrowsError(try TimestepSampler.grid(11).validate(range: 0..<10))
    }

    /// `grid:B` is a stage of the B-point grid: `grid:500` with 50 timesteps is stage one of
    /// `--stages 5:50,1:500`, so rules on it replay over a staged run's recorded errors.
    func testSubgridIsAStageOfTheLargerGrid() throws {
        var g = RandomGenerator(seed: 1)
        let stageOne = TimestepSampler.subgrid(50, of: 500).timesteps(range: 0..<1000, generator: &g)
        XCTAssertEqual(stageOne, TimestepGrid.stage(TimestepGrid.grid(T: 1000, maxN: 500), n: 50))
        XCTAssertEqual(Array(stageOne.prefix(3)), [11, 31, 51])
        XCTAssertEqual(stageOne.last, 991)
        XCTAssertEqual(TimestepSampler.subgrid(50, of: 500).name, "grid:500")
        XCTAssertEqual(TimestepSampler.subgrid(500, of: 500).timesteps(range: 0..<1000, generator: &g), TimestepGrid.grid(T: 1000, maxN: 500))
        XCTAssertThrowsError(try TimestepSampler.subgrid(51, of: 50).validate(range: 0..<1000)) { e in
            XCTAssertTrue(names(e, .timesteps) && "\(e)".contains("51"), "\(e)")
        }
        XCTAssertThrowsError(try TimestepSampler.subgrid(5, of: 1001).validate(range: 0..<1000))
        // Settings carry it as the sampler name.
        XCTAssertEqual(try TimestepSampler(parsing: "grid:500", count: 50), .subgrid(50, of: 500))
        XCTAssertEqual(try TimestepSampler(name: "grid:500", count: 50, list: nil), .subgrid(50, of: 500))
        XCTAssertThrowsError(try TimestepSampler(name: "grid:x", count: 50, list: nil)) { e in XCTAssertTrue("\(e)".contains("grid:x"), "\(e)") }
    }

    func testStagesParse() throws {
        let s = try StagedElimination(parsing: "5:50,1:500")
        XCTAssertEqual(s.stages, [.init(keep: 5, samples: 50), .init(keep: 1, samples: 500)])
        XCTAssertEqual(s.text, "5:50,1:500")
        for bad in ["", "5", "5:0", "a:3", "5:50,"] {
            XCTAssertThrowsError(try StagedElimination(parsing: bad)) { e in XCTAssertTrue(names(e, .stages), "\(e)") }
        }
    }

    func testWeightings() throws {
        let s = schedule()
        for w in [TimestepWeighting.uniform, .exponential(rate: 7), .elbo] {
            let v = w.weights(schedule: s)
            XCTAssertEqual(v.count, 1000)
            XCTAssertEqual(v.reduce(0, +) / 1000, 1, accuracy: 1e-9, w.name)
            XCTAssertTrue(v.allSatisfy { $0 > 0 && $0.isFinite }, w.name)
            XCTAssertEqual(try TimestepWeighting(parsing: w.name), w)
        }
        let e = TimestepWeighting.exponential(rate: 7).weights(schedule: s)
        XCTAssertEqual(e[500] / e[0], Foundation.exp(-3.5), accuracy: 1e-12)
        // ELBO: beta_t / (alpha_t (1 - abar_{t-1})), decreasing in t for the linear schedule.
        let elbo = TimestepWeighting.elbo.weights(schedule: s)
        let raw = { (t: Int) in s.betas[t] / ((1 - s.betas[t]) * (1 - s.alphasCumprod[t - 1])) }
        XCTAssertEqual(elbo[10] / elbo[400], raw(10) / raw(400), accuracy: 1e-9)
        XCTAssertEqual(elbo[0], elbo[1])
        XCTAssertGreaterThan(elbo[1], elbo[999])
        XCTAssertThrowsError(try TimestepWeighting(parsing: "cosine"))
    }
}
