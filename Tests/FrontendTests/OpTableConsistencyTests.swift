import Foundation
import XCTest
import KilnIR
import KilnTestSupport
@testable import KilnFrontend

/// The op registry is the one description of each op: these fail when an entry leaves out how
/// gradients pass through it, when code elsewhere names an op the registry does not know, or
/// when an attribute's default is not the one its typed key declares.
final class OpTableConsistencyTests: XCTestCase {
    /// Entries that say neither how gradients pass through the op nor that none does.
    static func withoutGradientRule(_ defs: [OpDef]) -> [String] { defs.filter { !$0.hasGradientRule }.map(\.name) }

    func testEveryOpHasAGradientOrANotDifferentiableMark() {
        let defs = OpRegistry.registeredTypes.compactMap(OpRegistry.def)
        XCTAssertGreaterThan(defs.count, 150)
        XCTAssertEqual(Self.withoutGradientRule(defs), [])
        // The check catches an entry with neither.
        let bare = OpDef("KilnTestBare", arity: .exactly(1), infer: { ctx in [(ctx.dtype(0), ctx.shape(0))] })
        XCTAssertEqual(Self.withoutGradientRule([bare, bare.notDifferentiable(), bare.gradient { _ in [nil] }]), ["KilnTestBare"])
    }

    func testEveryOpTheFrontendNamesInCodeIsRegistered() throws {
        let sites = try OpNameSites.scan(folder: OpNameSites.sourceFolder("Frontend"))
        // The scan finds the sites (gradients build ops by name, staticValue switches on Const/Shape).
        XCTAssertGreaterThan(sites.count, 100)
        XCTAssertTrue(sites.contains { $0.name == "SqrtGrad" } && sites.contains { $0.name == "Shape" })
        XCTAssertEqual(sites.filter { OpRegistry.def($0.name) == nil }.map(\.description), [])
    }

    func testTheNameScanCatchesUnregisteredNames() {
        let planted = OpNameSites.scan("""
            switch op.type {
            case "Identity", "NoSuchOp": break
            case let other: print(other) // "NotAName"
            }
            if x.op.type == "Misspelt" || n.op != "Const" {}
            _ = try g.apply("AlsoMissing", [x], name: "y")
            static let kinds: Set<String> = ["Placeholder", "Bogus"]
            if ["SaveV2", "Unknown"].contains(op.type) {}
            """, file: "planted.swift")
        XCTAssertEqual(planted.map(\.name), ["Identity", "NoSuchOp", "Misspelt", "Const", "AlsoMissing", "Placeholder", "Bogus", "SaveV2", "Unknown"])
        XCTAssertEqual(planted.filter { OpRegistry.def($0.name) == nil }.map(\.name), ["NoSuchOp", "Misspelt", "AlsoMissing", "Bogus", "Unknown"])
    }

    func testOnlySessionOpsAreMarkedAnsweredBySession() {
        var byService: [SessionService: Set<String>] = [:]
        for name in OpRegistry.registeredTypes {
            if case .session(let s) = OpRegistry.def(name)!.execution { byService[s, default: []].insert(name) }
        }
        XCTAssertEqual(Set(byService.keys), Set(SessionService.allCases), "every service answers some op")
        XCTAssertEqual(byService[.queue], QueueOps.types)
        XCTAssertEqual(byService[.checkpoint], ["SaveV2", "RestoreV2"])
        XCTAssertEqual(OpRegistry.def("Where")?.execution, .host)
        XCTAssertEqual(OpRegistry.def("MatMul")?.execution, .compiled)
    }

    /// A typed attribute's default, declared once, is what a node built without the attribute
    /// gets, what the Swift API passes by default, and what the gradient hands on.
    func testTypedAttributeDefaultsReachNodesTheAPIAndGradients() throws {
        let alpha = ElementwiseOps.LeakyRelu.alpha
        XCTAssertEqual(OpRegistry.def("LeakyRelu")?.attrDefaults["alpha"], alpha.defaultAttrValue)
        XCTAssertEqual(OpRegistry.def("LeakyReluGrad")?.attrDefaults["alpha"], alpha.defaultAttrValue)
        let g = Graph()
        let x = try g.placeholder(.float32, shape: Shape([2]), name: "x")
        let byName = try g.addOperation("LeakyRelu", name: "bare", inputs: [x], attrs: ["T": .type(.float32)])
        XCTAssertEqual(byName.attrs[alpha], 0.2)
        let y = try g.leakyRelu(x)
        XCTAssertEqual(y.op.attrs[alpha], alpha.defaultValue)
        let z = try g.leakyRelu(x, alpha: 0.3, name: "steeper")
        let dz = try g.gradients([z], [x])[0]!
        let grad = g.operations.first { $0.type == "LeakyReluGrad" }
        XCTAssertEqual(grad?.attrs[alpha], 0.3, "the gradient op takes the forward op's alpha (\(dz.name))")
        let m = try g.placeholder(.float32, shape: Shape([2, 2]), name: "m")
        XCTAssertEqual(try g.matmul(m, m).op.attrs[MathOps.MatMul.transposeA], false)
    }
}
