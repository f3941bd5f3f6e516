import TensorEngine
import XCTest

final class BLASCoreTests: XCTestCase {
    typealias F = BLASCore.CPUFeatures

    func testBestCoreTypeFollowsTheFeatures() {
        XCTAssertEqual(BLASCore.bestCoreType(for: F.skylakeX.union(.avx512bf16)), "Cooperlake")
        XCTAssertEqual(BLASCore.bestCoreType(for: F.skylakeX), "SkylakeX")
        // AVX-512 without one of SkylakeX's subsets (e.g. Knights Landing: no BW/DQ/VL) is not SkylakeX.
        XCTAssertEqual(BLASCore.bestCoreType(for: [.avx512f, .avx512cd, .avx2, .fma, .avx]), "Haswell")
        XCTAssertEqual(BLASCore.bestCoreType(for: [.avx2, .fma, .avx]), "Haswell")
        XCTAssertEqual(BLASCore.bestCoreType(for: [.avx2, .avx]), "SandyBridge")
        XCTAssertNil(BLASCore.bestCoreType(for: []))
    }

    func testRelaunchOnlyToAWiderFamilyAndNeverOverAUsersChoice() {
        let cpu = F.skylakeX.union(.avx512bf16)
        XCTAssertEqual(BLASCore.relaunchCoreType(loaded: "Prescott", features: cpu, environment: [:]), "Cooperlake")
        XCTAssertEqual(BLASCore.relaunchCoreType(loaded: "Prescott", features: [.avx2, .fma, .avx], environment: ["PATH": "/bin"]), "Haswell")
        // A narrower family than the CPU runs is widened (Zen 4 under OpenBLAS 0.3.21 loads Haswell).
        XCTAssertEqual(BLASCore.relaunchCoreType(loaded: "Haswell", features: cpu, environment: [:]), "Cooperlake")
        XCTAssertEqual(BLASCore.relaunchCoreType(loaded: "Zen", features: F.skylakeX, environment: [:]), "SkylakeX")
        XCTAssertEqual(BLASCore.relaunchCoreType(loaded: "Nehalem", features: [.avx2, .fma, .avx], environment: [:]), "Haswell")
        // As wide as the best, or wider, or a name the table does not know: kept.
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "Haswell", features: [.avx2, .fma, .avx], environment: [:]))
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "SkylakeX", features: F.skylakeX, environment: [:]))
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "SapphireRapids", features: cpu, environment: [:]))
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "SomeFutureCore", features: cpu, environment: [:]))
        XCTAssertEqual(BLASCore.rank(of: "cooperlake"), 4)
        XCTAssertNil(BLASCore.rank(of: "Accelerate"))
        // The user's OPENBLAS_CORETYPE, whatever it says, and a relaunched process are left alone.
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "Prescott", features: cpu, environment: ["OPENBLAS_CORETYPE": "Prescott"]))
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "Prescott", features: cpu, environment: ["OPENBLAS_CORETYPE": ""]))
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "Prescott", features: cpu, environment: [BLASCore.relaunchMarker: "1"]))
        // A CPU with nothing better than SSE3 stays on Prescott.
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "Prescott", features: [], environment: [:]))
    }

    /// `make test` picks the test runner's kernels with tools/best-blas-core.sh (it cannot relaunch
    /// as diffclass does); the script must decide as `bestCoreType` does.
    func testBestBLASCoreScriptAgreesWithTheEngine() throws {
        #if os(Linux) && arch(x86_64)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("tools/best-blas-core.sh")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
        XCTAssertEqual(out.trimmingCharacters(in: .whitespacesAndNewlines), BLASCore.bestCoreType(for: BLASCore.cpuFeatures) ?? "")
        #else
        throw XCTSkip("the script reads /proc/cpuinfo (Linux, x86-64)")
        #endif
    }

    func testRowPositionIndependenceIsClaimedOnlyWhereMeasured() {
        XCTAssertTrue(BLASCore.rowsArePositionIndependent(family: "Cooperlake"))
        XCTAssertTrue(BLASCore.rowsArePositionIndependent(family: "SKYLAKEX"))
        XCTAssertFalse(BLASCore.rowsArePositionIndependent(family: "Haswell"))
        XCTAssertFalse(BLASCore.rowsArePositionIndependent(family: "Zen"))
    }

    func testLoadedCoreIsNamed() {
        XCTAssertFalse(BLASCore.loaded.isEmpty)
        #if arch(x86_64)
        // Every x86-64 machine this runs on has at least AVX today; if not, the checks above still hold.
        if BLASCore.cpuFeatures.contains(.avx2) { XCTAssertTrue(BLASCore.cpuFeatures.contains(.avx)) }
        #endif
    }
}
