// The first TensorFlow 1 program: a constant matrix product, compiled and run by Kiln.
import ArgumentParser
import Kiln

struct HelloMatmulOptions: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "HelloMatmul", abstract: "A constant matrix product, compiled and run by Kiln.")

    @Option(help: ArgumentHelp("The device of the product, e.g. /gpu:0.", valueName: "DEVICE"))
    var device = "/cpu:0"
}
let options = HelloMatmulOptions.parseOrExit()

let g = Graph()
let product = try g.device(options.device) {
    let m1 = try g.constant([[3, 3]] as [[Float]])
    let m2 = try g.constant([[2], [2]] as [[Float]])
    return try g.matmul(m1, m2)
}
let sess = try Session(graph: g)
print(try sess.run(product))   // [[12.0]]
sess.close()
