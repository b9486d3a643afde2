import Foundation
import XCTest
import KilnTestSupport
import Kiln

/// What the session computes on the host rather than compiling: strings, checkpoint ops and
/// questions about its variables; and TensorFlow 2's resource-variable ops.
final class SessionHostOpTests: ScratchDirectoryTestCase {
    private func stringConst(_ g: Graph, _ t: Tensor, _ name: String) throws -> Output {
        try g.addOperation("Const", name: name, attrs: ["value": .tensor(t), "dtype": .type(.string)]).output()
    }

    func testStringConstantsPlaceholdersWithDefaultAndIdentitiesAreAnsweredWithoutCompiling() throws {
        let g = Graph()
        let c = try stringConst(g, Tensor(shape: [2], strings: [Array("a".utf8), [0, 255]]), "names")
        let withDefault = try g.placeholderWithDefault(c, shape: Shape([2]), name: "names_or_fed")
        let passed = try g.identity(withDefault, name: "passed")
        let number = try g.add(try g.constant(1 as Float), try g.constant(2 as Float))
        let sess = try Session(graph: g)
        XCTAssertEqual(try sess.run(passed), try Tensor(shape: [2], strings: [Array("a".utf8), [0, 255]]))
        XCTAssertEqual(sess.compileCount, 0)
        let fed = try Tensor(shape: [2], strings: [Array("x".utf8), Array("y".utf8)])
        XCTAssertEqual(try sess.run([passed, number, passed], feeds: [withDefault: fed]), [fed, Tensor(3 as Float), fed])
        // The string feed is not part of the compiled signature.
        XCTAssertEqual(try sess.run([number], feeds: [withDefault: Tensor(shape: [2], strings: [[], []])]), [Tensor(3 as Float)])
        XCTAssertEqual(sess.compileCount, 1)
    }

    func testStringsReachingCompiledOpsAreAClearErrorAndUnfedStringPlaceholdersAskForAFeed() throws {
        let g = Graph()
        let names = try stringConst(g, Tensor(shape: [3], strings: [[1], [2], [3]]), "names")
        let tiled = try g.tile(names, multiples: [2], name: "tiled")
        let sess = try Session(graph: g)
        assertKilnError(.unimplemented, contains: ["'tiled'", "names:0", "string"]) { _ = try sess.run(tiled) }
        // A reshape of a host value (strings too, as in TensorFlow) is answered on the host.
        let reshaped = try g.reshape(names, [3, 1], name: "reshaped")
        XCTAssertEqual(try sess.run(reshaped), try Tensor(shape: [3, 1], strings: [[1], [2], [3]]))
        let p = try g.placeholder(.string, shape: Shape([]), name: "path")
        let copied = try g.identity(p, name: "copied")
        assertKilnError(.invalidArgument, contains: ["You must feed", "'path'"]) { _ = try sess.run(copied) }
        XCTAssertEqual(try sess.run(copied, feeds: [p: Tensor("here")]), Tensor("here"))
    }

    func testReportUninitializedVariablesAndIsVariableInitializedFollowTheSessionsVariables() throws {
        let g = Graph()
        let a = try g.variable(1 as Float, name: "a")
        let b = try g.variable(2 as Float, name: "b")
        let report = try g.reportUninitializedVariables()
        let aReady = try g.addOperation("IsVariableInitialized", name: "a_ready", inputs: [a.ref], attrs: ["dtype": .type(.float32)]).output()
        let sess = try Session(graph: g)
        XCTAssertEqual(try sess.run([report, aReady]), [try Tensor(shape: [2], strings: [Array("a".utf8), Array("b".utf8)]), Tensor(false)])
        try sess.run(a.initializer)
        XCTAssertEqual(try sess.run([report, aReady]), [try Tensor(shape: [1], strings: [Array("b".utf8)]), Tensor(true)])
        try sess.run(b.initializer)
        XCTAssertEqual(try sess.run(report), try Tensor(shape: [0], strings: []))
    }

    func testResourceVariableOpsReadWriteAndAddInProgramOrder() throws {
        let g = Graph()
        let handle = try g.addOperation("VarHandleOp", name: "v", attrs: ["dtype": .type(.float32), "shape": .shape(Shape([2])),
                                                                           "shared_name": .string("v")]).output()
        XCTAssertTrue(handle.isRef)
        XCTAssertEqual(handle.shape, Shape([2]))
        let initial = try g.constant([1, 2] as [Float])
        let assign = try g.addOperation("AssignVariableOp", name: "v/Assign", inputs: [handle, initial], attrs: ["dtype": .type(.float32)])
        XCTAssertTrue(assign.outputs.isEmpty)
        let before = try g.addOperation("ReadVariableOp", name: "before", inputs: [handle], attrs: ["dtype": .type(.float32)]).output()
        let add = try g.controlDependencies([before.op]) {
            try g.addOperation("AssignAddVariableOp", name: "bump", inputs: [handle, try g.constant([10, 20] as [Float])], attrs: ["dtype": .type(.float32)])
        }
        let after = try g.controlDependencies([add]) {
            try g.addOperation("ReadVariableOp", name: "after", inputs: [handle], attrs: ["dtype": .type(.float32)]).output()
        }
        let ready = try g.addOperation("VarIsInitializedOp", name: "ready", inputs: [handle]).output()

        let sess = try Session(graph: g)
        XCTAssertEqual(try sess.run(ready), Tensor(false))
        assertKilnError(.failedPrecondition, contains: ["uninitialized", "v"]) { _ = try sess.run(before) }
        try sess.run(assign)
        XCTAssertEqual(try sess.run(ready), Tensor(true))
        // One run: the read before the add sees the old value, the one after it the new.
        let r = try sess.run([before, after])
        XCTAssertEqual(try r[0].scalars(as: Float.self), [1, 2])
        XCTAssertEqual(try r[1].scalars(as: Float.self), [11, 22])
        XCTAssertEqual(try sess.value(of: handle.op)?.scalars(as: Float.self), [11, 22])

        // Writes are checked against the variable's dtype and shape.
        assertKilnError(.invalidArgument, contains: ["dtype"]) {
            try g.addOperation("ReadVariableOp", name: "wrong", inputs: [handle], attrs: ["dtype": .type(.int32)])
        }
        assertKilnError(.invalidArgument, contains: ["Shapes"]) {
            try g.addOperation("AssignVariableOp", inputs: [handle, try g.constant([1, 2, 3] as [Float])], attrs: ["dtype": .type(.float32)])
        }
        assertKilnError(.invalidArgument, contains: ["must be a variable"]) {
            try g.addOperation("ReadVariableOp", inputs: [initial], attrs: ["dtype": .type(.float32)])
        }
        // The gradient flows through the read to the variable.
        let grad = try XCTUnwrap(try g.gradients([try g.reduceSum(try g.multiply(after, try g.constant(3 as Float)))], [handle])[0])
        XCTAssertEqual(try sess.run(grad).scalars(as: Float.self), [3, 3])
    }

    func testSaveV2AndRestoreV2RunThroughTheSessionAndReportBadArguments() throws {
        let g = Graph()
        let prefix = try g.placeholder(.string, shape: Shape([]), name: "prefix")
        let w = try g.variable([[1, 2], [3, 4]] as [[Double]], name: "w")
        let names = try stringConst(g, Tensor(shape: [1], strings: [Array("w".utf8)]), "names")
        let slices = try stringConst(g, Tensor(shape: [1], strings: [[]]), "slices")
        let save = try g.addOperation("SaveV2", name: "save", inputs: [prefix, names, slices, w.ref], attrs: ["dtypes": .types([.float64])])
        let restore = try g.addOperation("RestoreV2", name: "restore", inputs: [prefix, names, slices], attrs: ["dtypes": .types([.float64])])
        let wrongType = try g.addOperation("RestoreV2", name: "restore_int", inputs: [prefix, names, slices], attrs: ["dtypes": .types([.int32])])
        let sess = try Session(graph: g)
        try sess.run(w.initializer)
        try sess.run(save, feeds: [prefix: Tensor(path("ckpt"))])
        XCTAssertEqual(try CheckpointReader(prefix: path("ckpt")).allTensors(), ["w": try XCTUnwrap(sess.value(of: w))])
        XCTAssertEqual(try sess.run(restore.output(), feeds: [prefix: Tensor(path("ckpt"))]), sess.value(of: w))
        assertKilnError(.invalidArgument, contains: ["'restore_int'", "'w'", "float64", "int32"]) {
            _ = try sess.run(wrongType.output(), feeds: [prefix: Tensor(path("ckpt"))])
        }
        assertKilnError(.notFound, contains: ["'restore'", path("none")]) { _ = try sess.run(restore.output(), feeds: [prefix: Tensor(path("none"))]) }

        let sliced = try stringConst(g, Tensor(shape: [1], strings: [Array("2 2 0,1:-".utf8)]), "sliced")
        let partial = try g.addOperation("SaveV2", name: "save_slice", inputs: [prefix, names, sliced, w.ref], attrs: ["dtypes": .types([.float64])])
        assertKilnError(.unimplemented, contains: ["'save_slice'", "whole tensors"]) { try sess.run(partial, feeds: [prefix: Tensor(path("s"))]) }
        assertKilnError(.invalidArgument, contains: ["dtypes"]) {
            try g.addOperation("SaveV2", inputs: [prefix, names, slices, w.ref], attrs: ["dtypes": .types([.float32])])
        }
        // A compiled op cannot wait for a host op through a control edge: host ops run first.
        let bump = try g.assignAdd(w, try g.constant([[1, 1], [1, 1]] as [[Double]]), name: "bump")
        let after = try g.controlDependencies([save]) { try g.identity(bump, name: "after_save") }
        assertKilnError(.unimplemented, contains: ["'save'", "control edge"]) { _ = try sess.run(after, feeds: [prefix: Tensor(path("c"))]) }
        assertKilnError(.invalidArgument, contains: ["2 strings"]) {
            try g.addOperation("SaveV2", inputs: [prefix, names, slices, w.ref, w.ref], attrs: ["dtypes": .types([.float64, .float64])])
        }
    }
}
