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

    func testRelaunchOnlyFromTheFallbackAndNeverOverAUsersChoice() {
        let cpu = F.skylakeX.union(.avx512bf16)
        XCTAssertEqual(BLASCore.relaunchCoreType(loaded: "Prescott", features: cpu, environment: [:]), "Cooperlake")
        XCTAssertEqual(BLASCore.relaunchCoreType(loaded: "Prescott", features: [.avx2, .fma, .avx], environment: ["PATH": "/bin"]), "Haswell")
        // A family OpenBLAS recognised is kept, even when a wider one exists.
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "Haswell", features: cpu, environment: [:]))
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "SkylakeX", features: cpu, environment: [:]))
        // The user's OPENBLAS_CORETYPE, whatever it says, and a relaunched process are left alone.
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "Prescott", features: cpu, environment: ["OPENBLAS_CORETYPE": "Prescott"]))
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "Prescott", features: cpu, environment: ["OPENBLAS_CORETYPE": ""]))
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "Prescott", features: cpu, environment: [BLASCore.relaunchMarker: "1"]))
        // A CPU with nothing better than SSE3 stays on Prescott.
        XCTAssertNil(BLASCore.relaunchCoreType(loaded: "Prescott", features: [], environment: [:]))
    }

    func testLoadedCoreIsNamed() {
        XCTAssertFalse(BLASCore.loaded.isEmpty)
        #if arch(x86_64)
        // Every x86-64 machine this runs on has at least AVX today; if not, the checks above still hold.
        if BLASCore.cpuFeatures.contains(.avx2) { XCTAssertTrue(BLASCore.cpuFeatures.contains(.avx)) }
        #endif
    }
}
