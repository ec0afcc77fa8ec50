package io.intentflow.flink;

/**
 * Reads one string-valued field at the top level of a JSON object without building a tree.
 *
 * <p>The micro-batcher needs only the {@code session_id} of each raw Kafka value to route it to its
 * session shard; the full parse and validation happen once, in Python ({@code udfs.contract}). Nested
 * objects and arrays are skipped, so a {@code session_id} key inside {@code props} is never taken for
 * the envelope's. String escapes ({@code \n}, {@code \"}, {@code \\uXXXX} incl. surrogate pairs) are
 * decoded, so the value equals what a JSON parser returns (RFC 8259 §7).
 *
 * <p>Anything that is not a JSON object with that field as a string yields {@code null}; the caller
 * routes such values to a fixed shard, where the Python parse sends them to the DLQ with a reason.
 */
public final class TopLevelJsonField {

    private TopLevelJsonField() {}

    /**
     * @param json a JSON document (one Kafka value)
     * @param field the top-level key to read
     * @return the decoded string value, or {@code null} when absent, not a string or not valid JSON
     *     up to that point
     */
    public static String stringValue(String json, String field) {
        if (json == null) {
            return null;
        }
        final int n = json.length();
        int i = skipWs(json, 0);
        if (i >= n || json.charAt(i) != '{') {
            return null;
        }
        i++;
        while (true) {
            i = skipWs(json, i);
            if (i >= n) {
                return null;
            }
            char c = json.charAt(i);
            if (c == '}') {
                return null;
            }
            if (c == ',') {
                i++;
                continue;
            }
            if (c != '"') {
                return null;
            }
            StringBuilder key = new StringBuilder();
            i = readString(json, i, key);
            if (i < 0) {
                return null;
            }
            i = skipWs(json, i);
            if (i >= n || json.charAt(i) != ':') {
                return null;
            }
            i = skipWs(json, i + 1);
            if (i >= n) {
                return null;
            }
            if (key.toString().equals(field)) {
                if (json.charAt(i) != '"') {
                    return null;
                }
                StringBuilder value = new StringBuilder();
                return readString(json, i, value) < 0 ? null : value.toString();
            }
            i = skipValue(json, i);
            if (i < 0) {
                return null;
            }
        }
    }

    private static int skipWs(String s, int i) {
        final int n = s.length();
        while (i < n) {
            char c = s.charAt(i);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                break;
            }
            i++;
        }
        return i;
    }

    /** Reads the string starting at the quote {@code s[i]} into {@code out}; returns the index after it, or -1. */
    private static int readString(String s, int i, StringBuilder out) {
        final int n = s.length();
        i++;
        while (i < n) {
            char c = s.charAt(i);
            if (c == '"') {
                return i + 1;
            }
            if (c != '\\') {
                if (out != null) {
                    out.append(c);
                }
                i++;
                continue;
            }
            if (i + 1 >= n) {
                return -1;
            }
            char e = s.charAt(i + 1);
            char decoded;
            switch (e) {
                case '"': decoded = '"'; break;
                case '\\': decoded = '\\'; break;
                case '/': decoded = '/'; break;
                case 'b': decoded = '\b'; break;
                case 'f': decoded = '\f'; break;
                case 'n': decoded = '\n'; break;
                case 'r': decoded = '\r'; break;
                case 't': decoded = '\t'; break;
                case 'u':
                    if (i + 6 > n) {
                        return -1;
                    }
                    try {
                        decoded = (char) Integer.parseInt(s.substring(i + 2, i + 6), 16);
                    } catch (NumberFormatException ex) {
                        return -1;
                    }
                    if (out != null) {
                        out.append(decoded);
                    }
                    i += 6;
                    continue;
                default:
                    return -1;
            }
            if (out != null) {
                out.append(decoded);
            }
            i += 2;
        }
        return -1;
    }

    /** Skips one JSON value starting at {@code s[i]}; returns the index after it, or -1. */
    private static int skipValue(String s, int i) {
        final int n = s.length();
        char c = s.charAt(i);
        if (c == '"') {
            return readString(s, i, null);
        }
        if (c == '{' || c == '[') {
            int depth = 0;
            while (i < n) {
                c = s.charAt(i);
                if (c == '"') {
                    i = readString(s, i, null);
                    if (i < 0) {
                        return -1;
                    }
                    continue;
                }
                if (c == '{' || c == '[') {
                    depth++;
                } else if (c == '}' || c == ']') {
                    depth--;
                    if (depth == 0) {
                        return i + 1;
                    }
                }
                i++;
            }
            return -1;
        }
        // number, true, false, null: up to the next delimiter
        while (i < n) {
            c = s.charAt(i);
            if (c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                return i;
            }
            i++;
        }
        return -1;
    }
}
