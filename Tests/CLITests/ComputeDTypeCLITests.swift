import Foundation
import TensorEngine
import XCTest

/// `--compute-dtype`: bad values named, bf16 recorded in settings.json, and a run folder resumes
/// only with the dtype it started with.
extension CLITests {
    func testComputeDTypeIsValidatedRecordedAndGuardsResume() throws {
        try XCTSkipUnless(FileManager.default.fileExists(atPath: binary.path), "diffclass not built at \(binary.path)")
        let fm = FileManager.default
        let (dir, model, data) = try modelAndDataFolders()
        defer { try? fm.removeItem(at: dir) }
        func path(_ name: String) -> String { dir.appendingPathComponent(name).path }
        let common = ["eval", "--model", model.path, "--data", data.path, "--n-timesteps", "3", "--split", "train", "--threads", "1"]

        let bad = try run(common + ["--compute-dtype", "fp8", "--out", path("bad")])
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.err.contains("--compute-dtype: 'fp8' is not fp32 or bf16"), bad.err)
        XCTAssertFalse(fm.fileExists(atPath: path("bad")), "a refused flag writes nothing")

        if let problem = Engine.bfloat16Problem {
            let refused = try run(common + ["--compute-dtype", "bf16", "--out", path("x")])
            XCTAssertEqual(refused.status, 2)
            XCTAssertTrue(refused.err.contains("--compute-dtype") && refused.err.contains("AVX512_BF16"), refused.err)
            throw XCTSkip(problem)
        }

        let fp32 = try run(common + ["--limit", "2", "--out", path("fp32")])
        XCTAssertEqual(fp32.status, 0, fp32.err)
        let fp32Settings = try String(contentsOfFile: path("fp32/settings.json"), encoding: .utf8)
        XCTAssertFalse(fp32Settings.contains("compute_dtype"), "fp32 runs keep the settings format they had")

        let bf16 = try run(common + ["--limit", "2", "--compute-dtype", "bf16", "--out", path("bf16")])
        XCTAssertEqual(bf16.status, 0, bf16.err)
        XCTAssertTrue(bf16.out.contains("matrix products in bf16"), bf16.out)
        let settings = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: path("bf16/settings.json")))) as! [String: Any]
        XCTAssertEqual(settings["compute_dtype"] as? String, "bf16")

        // The per-image errors differ (the products round), the files are otherwise alike.
        func errors(_ run: String) throws -> [[Double]] {
            try String(contentsOfFile: path("\(run)/results.jsonl"), encoding: .utf8).split(separator: "\n").map {
                let line = try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
                return line["mean_errors"] as? [Double] ?? []
            }
        }
        let e32 = try errors("fp32"), e16 = try errors("bf16")
        XCTAssertEqual(e32.count, 2)
        XCTAssertEqual(e16.count, 2)
        XCTAssertNotEqual(e32, e16)

        // Resuming either folder with the other dtype is refused, naming the setting; with its own it resumes.
        let mixed = try run(common + ["--limit", "3", "--out", path("bf16")])
        XCTAssertEqual(mixed.status, 2)
        XCTAssertTrue(mixed.err.contains("compute_dtype: bf16 -> null"), mixed.err)
        let mixed2 = try run(common + ["--limit", "3", "--compute-dtype", "bf16", "--out", path("fp32")])
        XCTAssertEqual(mixed2.status, 2)
        XCTAssertTrue(mixed2.err.contains("compute_dtype: null -> bf16"), mixed2.err)
        let resumed = try run(common + ["--limit", "3", "--compute-dtype", "bf16", "--out", path("bf16")])
        XCTAssertEqual(resumed.status, 0, resumed.err)
        XCTAssertEqual(try errors("bf16").count, 3)
    }
}
