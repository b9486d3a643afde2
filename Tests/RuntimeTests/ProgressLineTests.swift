import Foundation
import XCTest
import Kiln

/// ProgressLine: on a terminal one status line rewritten in place (throttled) with permanent
/// lines above it; elsewhere only the permanent lines, exactly as print would write them.
final class ProgressLineTests: XCTestCase {
    final class Sink: @unchecked Sendable {
        var text = ""
    }

    func testNotATerminalWritesOnlyPlainLines() {
        let sink = Sink()
        let p = ProgressLine(isTerminal: false) { sink.text += $0 }
        p.update("step 1: loss=2.3", force: true)
        p.line("epoch  1: loss=2.0")
        p.update("step 2: loss=1.9", force: true)
        p.clear()
        p.line("done")
        XCTAssertEqual(sink.text, "epoch  1: loss=2.0\ndone\n")
    }

    func testOnATerminalTheStatusIsRewrittenInPlaceAndErasedBeforeALine() {
        let sink = Sink()
        let p = ProgressLine(isTerminal: true, maxRate: 1e-6) { sink.text += $0 }
        p.update("step 1")
        p.update("step 2")   // within the throttle interval: not written
        p.update("step 3", force: true)
        p.line("epoch 1")
        p.line("epoch 2")    // no status showing: nothing to erase
        p.update("step 4\nsecond line", force: true)
        p.clear()
        let erase = "\r\u{1B}[K"
        XCTAssertEqual(sink.text, erase + "step 1" + erase + "step 3" + erase + "epoch 1\n" + "epoch 2\n" + erase + "step 4" + erase)
    }
}
