import TensorEngine

Engine.initialize()
print("diffclass: engine ready (\(Engine.threads) threads, BLAS: \(Engine.blasDescription))")
