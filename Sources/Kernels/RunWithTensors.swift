import KilnIR

extension Executable {
    /// Convenience for tests and tools: runs with host tensors and returns new result tensors;
    /// variable parameters are updated in place in `parameters`.
    public func run(_ parameters: inout [Tensor]) throws -> [Tensor] {
        guard parameters.count == function.params.count else {
            throw KilnError.invalidArgument("'\(function.name)' takes \(function.params.count) parameter(s), got \(parameters.count)")
        }
        var inPtrs: [UnsafeMutableRawPointer?] = []
        for k in parameters.indices {
            if function.params[k].kind == .variable {
                try parameters[k].withUnsafeMutableBytes { inPtrs.append($0.baseAddress) }
            } else {
                inPtrs.append(parameters[k].buffer.pointer)
            }
        }
        let results = try resultTypes.map { try Tensor(dtype: $0.dtype, shape: $0.shape, buffer: TensorBuffer(byteCount: $0.byteCount)) }
        var outPtrs: [UnsafeMutableRawPointer?] = results.map { $0.buffer.pointer }
        try withExtendedLifetime(parameters) {
            try run(inputs: &inPtrs, outputs: &outPtrs)
        }
        return results
    }
}
