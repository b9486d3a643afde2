// The classic counter: a variable, an update op, an initializer, three runs.
import ArgumentParser
import Kiln

struct CounterOptions: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "Counter", abstract: "A variable, an update op, an initializer, three runs.")

    @Option(help: ArgumentHelp("The device of the variable and its update, e.g. /gpu:0.", valueName: "DEVICE"))
    var device = "/cpu:0"
}
let options = CounterOptions.parseOrExit()

let g = Graph()
let (state, update) = try g.device(options.device) {
    let state = try g.variable(0 as Int32, name: "counter")
    let newValue = try state + 1
    let update = try g.assign(state, newValue)
    return (state, update)
}
let initOp = try g.globalVariablesInitializer()

let sess = try Session(graph: g)
try sess.run(initOp)
print(try sess.run(state))      // 0
for _ in 0..<3 {
    _ = try sess.run(update)
    print(try sess.run(state))  // 1, 2, 3
}
sess.close()
