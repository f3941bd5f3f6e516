// swift-tools-version:6.0
// DiffusionClassifier: diffusion models as image classifiers.
// Layers (each uses only the ones above it in this list):
//   CEngineSupport (C: BLAS, FPU flags) -> TensorEngine -> NeuralNetworks -> ... -> diffclass
import PackageDescription

let package = Package(
    name: "DiffusionClassifier",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "TensorEngine", targets: ["TensorEngine"]),
        .library(name: "NeuralNetworks", targets: ["NeuralNetworks"]),
        .library(name: "Diffusion", targets: ["Diffusion"]),
        .library(name: "DiffusionClassifier", targets: ["DiffusionClassifier"]),
        .library(name: "Images", targets: ["Images"]),
        .library(name: "Datasets", targets: ["Datasets"]),
        .library(name: "Reports", targets: ["Reports"]),
        .library(name: "StableDiffusion", targets: ["StableDiffusion"]),
        .library(name: "Robustness", targets: ["Robustness"]),
        .library(name: "Cluster", targets: ["Cluster"]),
        .library(name: "EDM", targets: ["EDM"]),
        .library(name: "DiT", targets: ["DiT"]),
        .executable(name: "diffclass", targets: ["diffclass"]),
    ],
    targets: [
        // OpenBLAS through pkg-config on Linux (Debian: libopenblas-dev). Accelerate is used on Apple.
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // One C header for every OS: BLAS wrappers, BLAS thread control, denormal flushing.
        .target(
            name: "CEngineSupport",
            dependencies: [.target(name: "COpenBLAS", condition: .when(platforms: [.linux]))],
            linkerSettings: [.linkedFramework("Accelerate", .when(platforms: [.macOS]))]
        ),
        .systemLibrary(name: "CLibPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CLibJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // PNG/JPEG decoding and encoding, gzip inflation; errors returned, never aborts.
        .target(name: "CImageSupport", dependencies: ["CLibPNG", "CLibJPEG", "CZlib"]),
        // Layer 1: tensors, kernels, reverse-mode autodiff, seeded random numbers.
        .target(name: "TensorEngine", dependencies: ["CEngineSupport"]),
        // Layer 2: neural-network layers, optimizers, safetensors, diffusers configs.
        .target(name: "NeuralNetworks", dependencies: ["TensorEngine"]),
        // Layer 2: images: PNG/JPEG decoding and encoding, resizing (bilinear, PIL bicubic), sample grids.
        .target(name: "Images", dependencies: ["TensorEngine", "CImageSupport"]),
        // Layer 3: noise schedules, diffusers-compatible U-Nets, training and sampling.
        .target(name: "Diffusion", dependencies: ["TensorEngine", "NeuralNetworks"]),
        // Layer 3: diffusers' DiTTransformer2DModel (DiT, the class-conditional latent transformer).
        .target(name: "DiT", dependencies: ["TensorEngine", "NeuralNetworks", "Diffusion"]),
        // Layer 4: diffusion models as classifiers (scoring, timestep schedules, elimination, evaluation runs).
        .target(name: "DiffusionClassifier", dependencies: ["TensorEngine", "NeuralNetworks", "Diffusion"]),
        // Layer 5: datasets (IDX, Fashion-MNIST, image folders of PNG/JPEG files).
        .target(name: "Datasets", dependencies: ["TensorEngine", "NeuralNetworks", "Images", "Diffusion", "CImageSupport"]),
        // Layer 5: self-contained HTML reports (inline SVG) of evaluation, analysis and robustness run folders.
        .target(name: "Reports", dependencies: ["DiffusionClassifier"]),
        // Layer 5: Stable Diffusion pieces (CLIP tokenizer and text encoder, U-Net, VAE) and the pipeline as a zero-shot classifier model.
        .target(name: "StableDiffusion", dependencies: ["TensorEngine", "NeuralNetworks", "Images", "Diffusion", "DiffusionClassifier"]),
        // Layer 5: diffusers DiTPipeline folders for classification (DiT + VAE + schedule + class names).
        .target(name: "LatentDiT", dependencies: ["TensorEngine", "NeuralNetworks", "Diffusion", "DiT", "DiffusionClassifier", "StableDiffusion"]),
        // Layer 5: adversarial attacks (PGD, APGD-CE/DLR/T, Square, EOT) against any DifferentiableClassifier,
        // robustness evaluation (a point is robust only if every attack fails), robustness runs.
        .target(name: "Robustness", dependencies: ["TensorEngine", "NeuralNetworks", "Images", "Diffusion", "DiffusionClassifier"]),
        // Tests only: a small discriminative CNN, its training and accuracy, for the attack tests.
        .target(name: "RobustnessTestSupport", dependencies: ["TensorEngine", "NeuralNetworks", "DiffusionClassifier", "Robustness"]),
        // Layer 5: sharded runs on clusters: Slurm job arrays and Kubernetes Indexed Jobs (scripts, manifests,
        // shard plans), the merge step, and the status of a sharded run folder.
        .target(name: "Cluster", dependencies: ["NeuralNetworks", "DiffusionClassifier"]),
        // Layer 3: NVlabs/edm's networks (SongUNet, DhariwalUNet) in EDM/VP/VE preconditioning, their folders.
        .target(name: "EDM", dependencies: ["TensorEngine", "NeuralNetworks", "Diffusion"]),
        // Benchmarks of every layer against PyTorch (`diffclass bench`, `make bench`).
        .target(name: "Benchmarks", dependencies: ["TensorEngine", "NeuralNetworks", "Diffusion", "DiffusionClassifier", "Datasets"]),
        // Layer 6: the command-line tool; it parses arguments and calls the library.
        .executableTarget(name: "diffclass", dependencies: ["TensorEngine", "NeuralNetworks", "Images", "Diffusion", "DiffusionClassifier", "Datasets", "Reports", "StableDiffusion", "LatentDiT", "Robustness", "Cluster", "Benchmarks", "EDM"]),
        .testTarget(name: "TensorEngineTests", dependencies: ["TensorEngine"]),
        .testTarget(name: "NeuralNetworksTests", dependencies: ["TensorEngine", "NeuralNetworks"]),
        .testTarget(name: "DiffusionTests", dependencies: ["TensorEngine", "NeuralNetworks", "Diffusion"], exclude: ["Fixtures"]),
        .testTarget(name: "DiffusionClassifierTests", dependencies: ["TensorEngine", "NeuralNetworks", "Diffusion", "DiffusionClassifier"], exclude: ["Fixtures"]),
        .testTarget(name: "DatasetsTests", dependencies: ["TensorEngine", "Images", "Datasets"], exclude: ["Fixtures"]),
        .testTarget(name: "ReportsTests", dependencies: ["DiffusionClassifier", "Reports"]),
        .testTarget(name: "StableDiffusionTests", dependencies: ["TensorEngine", "NeuralNetworks", "Images", "Diffusion", "DiffusionClassifier", "Datasets", "StableDiffusion"], exclude: ["Fixtures"]),
        .testTarget(name: "DiTTests", dependencies: ["TensorEngine", "NeuralNetworks", "Diffusion", "DiT", "DiffusionClassifier", "StableDiffusion", "LatentDiT"], exclude: ["Fixtures"]),
        .testTarget(name: "RobustnessTests", dependencies: ["TensorEngine", "NeuralNetworks", "Diffusion", "DiffusionClassifier", "Datasets", "Robustness", "RobustnessTestSupport"]),
        .testTarget(name: "ClusterTests", dependencies: ["NeuralNetworks", "Cluster"]),
        .testTarget(name: "EDMTests", dependencies: ["TensorEngine", "NeuralNetworks", "Diffusion", "DiffusionClassifier", "EDM"], exclude: ["Fixtures"]),
        // Runs the built diffclass binary (built with the tests by `swift build --build-tests`).
        .testTarget(name: "CLITests", dependencies: ["diffclass", "TensorEngine"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v5]
)
