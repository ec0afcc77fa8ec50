package io.intentflow.flink;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

class TopLevelJsonFieldTest {

    @Test
    void readsTopLevelStringAfterNestedValues() {
        String json = "{\"props\":{\"session_id\":\"inner\",\"a\":[1,{\"b\":\"}\"}]},\"n\":-1.5e3,"
                + "\"ok\":true,\"x\":null, \"session_id\" : \"outer\"}";
        assertEquals("outer", TopLevelJsonField.stringValue(json, "session_id"));
    }

    @Test
    void decodesEscapesLikeAJsonParser() {
        assertEquals("a\"b\\c/d\n\t", TopLevelJsonField.stringValue(
                "{\"session_id\":\"a\\\"b\\\\c\\/d\\n\\t\"}", "session_id"));
        assertEquals("caf\u00e9 \uD83D\uDE00", TopLevelJsonField.stringValue(
                "{\"session_id\":\"caf\\u00e9 \\ud83d\\ude00\"}", "session_id"));
        assertEquals("caf\u00e9", TopLevelJsonField.stringValue("{\"session_id\":\"caf\u00e9\"}", "session_id"));
    }

    @Test
    void escapedKeyMatchesToo() {
        assertEquals("s1", TopLevelJsonField.stringValue("{\"session\\u005fid\":\"s1\"}", "session_id"));
    }

    @Test
    void absentWrongTypeOrMalformedGiveNull() {
        assertNull(TopLevelJsonField.stringValue("{\"a\":1}", "session_id"));
        assertNull(TopLevelJsonField.stringValue("{\"session_id\":12}", "session_id"));
        assertNull(TopLevelJsonField.stringValue("[\"session_id\",\"x\"]", "session_id"));
        assertNull(TopLevelJsonField.stringValue("not json", "session_id"));
        assertNull(TopLevelJsonField.stringValue("{\"session_id\":\"unterminated", "session_id"));
        assertNull(TopLevelJsonField.stringValue("{\"a\":{\"b\":1}", "session_id"));
        assertNull(TopLevelJsonField.stringValue("", "session_id"));
        assertNull(TopLevelJsonField.stringValue(null, "session_id"));
        assertNull(TopLevelJsonField.stringValue("{\"session_id\":\"bad \\q escape\"}", "session_id"));
    }

    @Test
    void bytesGiveTheUtf8OfWhatTheStringReaderGives() {
        String[] docs = {
            "{\"props\":{\"session_id\":\"inner\",\"a\":[1,{\"b\":\"}\"}]},\"n\":-1.5e3,\"ok\":true,\"x\":null, "
                + "\"session_id\" : \"outer\"}",
            "{\"session_id\":\"a\\\"b\\\\c\\/d\\n\\t\"}",
            "{\"session_id\":\"caf\\u00e9 \\ud83d\\ude00\"}",
            "{\"session_id\":\"caf\u00e9 \uD83D\uDE00\"}",
            "{\"session\\u005fid\":\"s1\"}",
            "{\"sess\u00e9\":\"x\",\"session_id\":\"s2\"}",
            "{\"a\":\"x\\\"y\",\"session_id\":\"s3\"}",
            "{\"a\":1}", "{\"session_id\":12}", "[\"session_id\",\"x\"]", "not json", "",
            "{\"session_id\":\"unterminated", "{\"a\":{\"b\":1}", "{\"session_id\":\"bad \\q escape\"}",
        };
        for (String doc : docs) {
            String expected = TopLevelJsonField.stringValue(doc, "session_id");
            byte[] got = TopLevelJsonField.utf8Value(doc.getBytes(StandardCharsets.UTF_8), "session_id");
            if (expected == null) {
                assertNull(got, doc);
            } else {
                assertArrayEquals(expected.getBytes(StandardCharsets.UTF_8), got, doc);
            }
        }
        assertNull(TopLevelJsonField.utf8Value(null, "session_id"));
    }
}
