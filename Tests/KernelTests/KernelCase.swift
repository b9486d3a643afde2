import Foundation
import KilnIR
import KilnPasses
import KilnKernels

/// How a floating-point result must agree with the reference evaluator. Integer and boolean
/// results always agree exactly.
enum Agreement: Sendable {
    /// The same bits (random draws: every backend implements the reference's counter-based generator).
    case exact
    /// |got - want| <= tolerance * max(1, |want|); NaN agrees with NaN.
    case relative(Double)
}

/// One computation that every backend must compute as the reference evaluator does.
struct KernelCase: Sendable {
    var name: String
    /// Ready to compile (through whatever passes the case wants).
    var function: Function
    var inputs: [Tensor]
    var fuse = true
    var agreement: Agreement = .relative(1e-5)
    /// Results compared bit for bit whatever `agreement` says (random draws).
    var exactResults: Set<Int> = []
    /// The run must throw this message, and the reference evaluator the same error.
    var throwsMessage: String?
    /// With `throwsMessage`: every variable must still hold its value from before the run.
    var variablesUntouchedOnFault = false
    /// How many jobs at least the run must give the worker pool on a target (the kernels really
    /// were split); counted by the C runtime (`kiln_parallel_jobs`), whatever the backend.
    var splitJobs: (@Sendable (TargetDescription) -> Int)?
    /// More to check on the executable compiled for a target; returns the problem, nil when
    /// there is none.
    var inspect: (@Sendable (any Executable, TargetDescription) -> String?)?
    /// How floating-point results must agree on a device (`TargetDescription.workItems`), when
    /// not as `agreement`: a device's log and cos are not glibc's (OpenCL allows a few ulp), so
    /// draws through them agree to rounding, not bit for bit.
    var deviceAgreement: Agreement?
    /// Judges the results itself instead of the reference evaluator (accuracy against libm or
    /// exact sums, where the reference evaluator is not the oracle or too slow); returns the problem.
    var expected: (@Sendable ([Tensor]) -> String?)?

    init(_ name: String, _ function: Function, _ inputs: [Tensor], fuse: Bool = true, agreement: Agreement = .relative(1e-5),
         exactResults: Set<Int> = [], throwsMessage: String? = nil, variablesUntouchedOnFault: Bool = false, splitJobs: (@Sendable (TargetDescription) -> Int)? = nil,
         inspect: (@Sendable (any Executable, TargetDescription) -> String?)? = nil, expected: (@Sendable ([Tensor]) -> String?)? = nil,
         deviceAgreement: Agreement? = nil) {
        self.name = name
        self.function = function
        self.inputs = inputs
        self.fuse = fuse
        self.agreement = agreement
        self.exactResults = exactResults
        self.throwsMessage = throwsMessage
        self.variablesUntouchedOnFault = variablesUntouchedOnFault
        self.splitJobs = splitJobs
        self.inspect = inspect
        self.expected = expected
        self.deviceAgreement = deviceAgreement
    }

    /// Parses `text` and runs shape inference and the verifier (the standard pipeline with `passes: .standard`).
    static func parse(_ text: String, passes: Passes = .verify) throws -> Function {
        var f = try Parser.parse(text)
        switch passes {
        case .verify: try PassManager([ShapeInferencePass(), VerifyPass()]).run(&f)
        case .standard: try PassManager.standard().run(&f)
        }
        return f
    }

    enum Passes { case verify, standard }

    /// Cases that only compare values can share one executable with others.
    var batchable: Bool { throwsMessage == nil && splitJobs == nil && inspect == nil && expected == nil }

    /// What the reference evaluator makes of the case: results and variables after the run.
    func reference() -> Result<(results: [Tensor], parameters: [Tensor]), Error> {
        Result { try ReferenceEvaluator.run(function, parameters: inputs) }
    }

    /// The problem with a compiled run's outcome (results and parameters after it), or nil.
    func judge(_ got: Result<[Tensor], Error>, parameters: [Tensor], on target: TargetDescription,
               reference: () -> Result<(results: [Tensor], parameters: [Tensor]), Error>) -> String? {
        let agreement = target.workItems ? deviceAgreement ?? self.agreement : self.agreement
        if let expected {
            switch got {
            case .success(let results): return expected(results)
            case .failure(let e): return "threw \(e)"
            }
        }
        switch (got, reference()) {
        case (.failure(let c), .failure(let r)):
            guard let message = throwsMessage else { return "threw \(c) (the reference evaluator threw too: \(r))" }
            guard let ce = c as? KilnError, let re = r as? KilnError, ce == re else { return "threw \(c), the reference evaluator \(r)" }
            if ce.message != message { return "threw \"\(ce.message)\", expected \"\(message)\"" }
            if variablesUntouchedOnFault {
                for (k, p) in function.params.enumerated() where p.kind == .variable && parameters[k] != inputs[k] {
                    return "variable '\(p.name)' changed by a run that failed"
                }
            }
            return nil
        case (.success(let results), .success(let want)):
            if let message = throwsMessage { return "no fault; expected \"\(message)\"" }
            guard results.count == want.results.count else { return "\(results.count) results, expected \(want.results.count)" }
            for (k, (g, w)) in zip(results, want.results).enumerated() {
                if let d = Self.disagreement(g, w, exactResults.contains(k) ? .exact : agreement) { return "result \(k): \(d)" }
            }
            for (k, p) in function.params.enumerated() where p.kind == .variable {
                if let d = Self.disagreement(parameters[k], want.parameters[k], agreement) { return "variable '\(p.name)' after the run: \(d)" }
            }
            return nil
        case (.failure(let c), .success):
            return "threw \(c); the reference evaluator ran"
        case (.success, .failure(let r)):
            return "ran; the reference evaluator threw \(r)"
        }
    }

    /// Where `got` and `want` differ, or nil.
    static func disagreement(_ got: Tensor, _ want: Tensor, _ agreement: Agreement) -> String? {
        if got.dtype != want.dtype { return "dtype \(got.dtype), expected \(want.dtype)" }
        if got.shape != want.shape { return "shape \(got.shape), expected \(want.shape)" }
        for i in 0..<want.elementCount {
            let (x, y) = (got.element(at: i), want.element(at: i))
            if want.dtype.isFloatingPoint {
                let (a, b) = (x.asDouble, y.asDouble)
                switch agreement {
                case .exact:
                    if a.bitPattern == b.bitPattern { continue }
                case .relative(let tolerance):
                    if a.isNaN && b.isNaN || a == b { continue }
                    if Swift.abs(a - b) <= tolerance * Swift.max(1, Swift.abs(b)) { continue }
                }
                return "element \(i): \(a), reference \(b)"
            } else if x != y {
                return "element \(i): \(x), reference \(y)"
            }
        }
        return nil
    }
}

extension Function {
    /// `parts` as one function of independent computations: every part's parameters in order,
    /// then every body, then every part's results. Returns where each part's parameters and
    /// results went.
    static func joining(_ parts: [Function], name: String) -> (function: Function, params: [Range<Int>], results: [Range<Int>]) {
        var out = Function(name: name)
        var paramRanges: [Range<Int>] = [], resultRanges: [Range<Int>] = []
        for p in parts {
            paramRanges.append(out.params.count..<(out.params.count + p.params.count))
            out.params += p.params
        }
        var next = out.params.count
        for (k, p) in parts.enumerated() {
            var id: [Int: Int] = [:]
            for i in p.params.indices { id[i] = paramRanges[k].lowerBound + i }
            for inst in p.body {
                id[inst.id] = next
                out.body.append(Instruction(id: next, op: inst.op, operands: inst.operands.map { id[$0]! }, type: inst.type))
                next += 1
            }
            resultRanges.append(out.results.count..<(out.results.count + p.results.count))
            out.results += p.results.map { id[$0]! }
        }
        return (out, paramRanges, resultRanges)
    }
}
