import XCTest
@testable import MLXCRuntime

/// Templates come with model downloads: sizes a template computes are bounded before anything is
/// allocated, and a render cannot loop, recurse or grow without end (issue 17). Found by inputs
/// written for the `tools/fuzz chat-template` binary after reading the builtins (`center(10**12)`
/// asked ASan for 500 GB); the fuzzer's own runs had not reached them yet.
final class ChatTemplateLimitsTests: XCTestCase {
    func render(_ source: String) throws -> String {
        try ChatTemplate(source: source, origin: "t.jinja").render(messages: [ChatMessage(role: "user", content: "hi")],
                                                                   addGenerationPrompt: true)
    }

    func assertRefused(_ source: String, _ expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try render(source), file: file, line: line) { error in
            XCTAssertTrue(error is TemplateError, "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".hasPrefix("t.jinja "), "\(error)", file: file, line: line)
            XCTAssertTrue("\(error)".contains(expected), "expected \"\(expected)\" in: \(error)", file: file, line: line)
        }
    }

    func testHugeSizesAreRefusedBeforeAllocating() {
        assertRefused(#"{{ "x"|center(1000000000000) }}"#, "center width of 1000000000000")
        assertRefused(#"{{ "ab" * 10000000000 }}"#, "'*' of 10000000000")
        assertRefused(#"{{ [1, 2] * 10000000000 }}"#, "'*' of 10000000000")
        assertRefused("{% set s %}a\nb{% endset %}{{ s|indent(1000000000000) }}", "indent width of 1000000000000")
        assertRefused(#"{{ messages|tojson(indent=4611686018427387904) }}"#, "tojson indent of 4611686018427387904")
        assertRefused(#"{% for i in range(100000000000) %}{% endfor %}"#, "range(0, 100000000000, 1) has more than")
        assertRefused(#"{% for i in range(-9223372036854775807, 9223372036854775807) %}{% endfor %}"#, "has more than")
    }

    func testRendersCannotLoopRecurseOrGrowWithoutEnd() {
        let limit = RenderBudget.maxIterations
        RenderBudget.maxIterations = 1000
        defer { RenderBudget.maxIterations = limit }
        assertRefused("{% for a in range(40) %}{% for b in range(40) %}{% endfor %}{% endfor %}", "more than 1000 loop iterations in one render")
        XCTAssertNoThrow(try render("{% for a in range(30) %}{% for b in range(30) %}{% endfor %}{% endfor %}"))
        assertRefused("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "nested more than 200 calls deep")
        assertRefused(#"{% for a in range(4096) %}{{ "x" * 16777216 }}{% endfor %}"#, "the rendered text passed")
    }

    func testDeepNestingIsASyntaxErrorNotAStackOverflow() {
        // 8000 unary minuses overflowed the parser's stack (run through the fuzz binary).
        for source in ["{{ " + String(repeating: "-", count: 8000) + "1 }}", "{{ " + String(repeating: "not ", count: 8000) + "true }}",
                       "{{ " + String(repeating: "(", count: 8000) + "1" + String(repeating: ")", count: 8000) + " }}",
                       String(repeating: "{% if true %}", count: 8000) + String(repeating: "{% endif %}", count: 8000)] {
            XCTAssertThrowsError(try ChatTemplate(source: source, origin: "t.jinja")) { error in
                XCTAssertTrue("\(error)".contains("nested more than 256 levels deep"), "\(error)")
            }
        }
        XCTAssertEqual(try render("{{ " + String(repeating: "(", count: 100) + "- -1" + String(repeating: ")", count: 100) + " }}"), "1")
    }

    func testOrdinarySizesStillRenderAsPythonDoes() throws {
        XCTAssertEqual(try render(#"{{ "ab" * 3 }}|{{ "ab" * -2 }}|{{ [1] * 2 }}"#), "ababab||[1, 1]")
        XCTAssertEqual(try render(#"[{{ "x"|center(5) }}][{{ "xyz"|center(-4) }}]"#), "[  x  ][xyz]")
        XCTAssertEqual(try render("{% set s %}a\nb{% endset %}{{ s|indent(2) }}|{{ s|indent(-3) }}"), "a\n  b|a\nb")
        XCTAssertEqual(try render("{{ range(10, 0, -3)|join(',') }}|{{ range(5, 1)|length }}"), "10,7,4,1|0")
        XCTAssertEqual(try render("{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(150) }}").count, 342)
    }
}
