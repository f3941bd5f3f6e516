import TensorEngine

extension EngineBenchmarks {
    /// Cases for ops that land in later commits (conv2d, group norm, attention).
    static func extraCases(quick: Bool) -> [BenchmarkCase] { [] }
}
