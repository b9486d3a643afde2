import KilnIR

/// Arithmetic operators build graph ops, as Python's do on TensorFlow tensors. A Swift number on
/// one side becomes a constant of the other side's dtype, named like TensorFlow names it
/// (`add/y` for `state + 1`).
public func + (x: some OutputConvertible, y: some OutputConvertible) throws -> Output { try x.output.graph.add(x, y) }
public func - (x: some OutputConvertible, y: some OutputConvertible) throws -> Output { try x.output.graph.subtract(x, y) }
public func * (x: some OutputConvertible, y: some OutputConvertible) throws -> Output { try x.output.graph.multiply(x, y) }
public func / (x: some OutputConvertible, y: some OutputConvertible) throws -> Output { try x.output.graph.divide(x, y) }
public prefix func - (x: some OutputConvertible) throws -> Output { try x.output.graph.negative(x) }

public func + (x: some OutputConvertible, y: Double) throws -> Output { try x.output.graph.withScalar("AddV2", "add", x.output, y, right: true) }
public func - (x: some OutputConvertible, y: Double) throws -> Output { try x.output.graph.withScalar("Sub", "sub", x.output, y, right: true) }
public func * (x: some OutputConvertible, y: Double) throws -> Output { try x.output.graph.withScalar("Mul", "mul", x.output, y, right: true) }
public func / (x: some OutputConvertible, y: Double) throws -> Output { try x.output.graph.withScalar(nil, "truediv", x.output, y, right: true) }
public func + (x: Double, y: some OutputConvertible) throws -> Output { try y.output.graph.withScalar("AddV2", "add", y.output, x, right: false) }
public func - (x: Double, y: some OutputConvertible) throws -> Output { try y.output.graph.withScalar("Sub", "sub", y.output, x, right: false) }
public func * (x: Double, y: some OutputConvertible) throws -> Output { try y.output.graph.withScalar("Mul", "mul", y.output, x, right: false) }
public func / (x: Double, y: some OutputConvertible) throws -> Output { try y.output.graph.withScalar(nil, "truediv", y.output, x, right: false) }

extension Graph {
    /// `t op scalar` (or `scalar op t`), the scalar converted to t's dtype. A nil type means division.
    func withScalar(_ type: String?, _ name: String, _ t: Output, _ scalar: Double, right: Bool) throws -> Output {
        if type == nil && !t.dtype.isFloatingPoint {
            // Integer true division converts both sides to floating point first.
            let c = try constant(scalar, dtype: t.dtype, name: right ? "y" : "x")
            return right ? try truediv(t, c) : try truediv(c, t)
        }
        let opName = uniqueName(name)
        let value = try Tensor(literal: scalar, dtype: t.dtype)
        let c = try addOperation("Const", name: opName + (right ? "/y" : "/x"), attrs: ["value": .tensor(value), "dtype": .type(t.dtype)],
                                 nameIsFinal: true).output()
        let opType = type ?? "RealDiv"
        return try addOperation(opType, name: opName, inputs: right ? [t, c] : [c, t], attrs: ["T": .type(t.dtype)], nameIsFinal: true).output()
    }
}
