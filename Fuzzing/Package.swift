// swift-tools-version:6.0
// Coverage-guided fuzz targets (libFuzzer) for every parser of the DiffusionClassifier package.
// A package of its own, so that its sanitizer build (libFuzzer and AddressSanitizer, see fuzz.sh) has
// its own build folder (Fuzzing/.build) and never touches the main package's build or tests.
// Build and run through the repository's Makefile (`make fuzz`) or Fuzzing/fuzz.sh; see
// docs/reliability.md.
import PackageDescription

// Each target exports LLVMFuzzerTestOneInput; libFuzzer supplies `main`, so the files are parsed as
// a library (no top-level code, no entry point of their own).
let asLibrary: [SwiftSetting] = [.unsafeFlags(["-parse-as-library"])]

func fuzzTarget(_ name: String, _ products: [String], support: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzSupport"] + support + products.map { .product(name: $0, package: "DiffusionClassifier") },
        swiftSettings: asLibrary
    )
}

let package = Package(
    name: "DiffusionClassifierFuzz",
    dependencies: [.package(name: "DiffusionClassifier", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "NeuralNetworks", package: "DiffusionClassifier")]),
        .target(name: "FuzzStrategies", dependencies: ["FuzzSupport", .product(name: "DiffusionClassifier", package: "DiffusionClassifier"),
                                                       .product(name: "NeuralNetworks", package: "DiffusionClassifier")]),
        fuzzTarget("fuzz-safetensors", ["NeuralNetworks", "TensorEngine"]),
        fuzzTarget("fuzz-model-config", ["Diffusion", "StableDiffusion", "DiT"]),
        fuzzTarget("fuzz-scheduler-config", ["Diffusion"]),
        fuzzTarget("fuzz-idx", ["Datasets"]),
        fuzzTarget("fuzz-png", ["Images"]),
        fuzzTarget("fuzz-jpeg", ["Images"]),
        fuzzTarget("fuzz-clip-vocab", ["StableDiffusion"]),
        fuzzTarget("fuzz-clip-text", ["StableDiffusion"]),
        fuzzTarget("fuzz-run-results", ["DiffusionClassifier", "Robustness"]),
        fuzzTarget("fuzz-run-settings", ["DiffusionClassifier", "Robustness", "Diffusion", "NeuralNetworks"], support: ["FuzzStrategies"]),
        fuzzTarget("fuzz-calibration", ["DiffusionClassifier"]),
        fuzzTarget("fuzz-options", ["DiffusionClassifier", "Diffusion", "Robustness", "NeuralNetworks"], support: ["FuzzStrategies"]),
    ],
    swiftLanguageModes: [.v5]
)
