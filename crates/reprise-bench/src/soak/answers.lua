-- wrk script of `reprise-bench soak`: counts every answer by status and
-- body (its first 200 bytes), and prints one `answer<TAB>COUNT<TAB>STATUS<TAB>BODY`
-- line per kind when the run is done (CR, LF, TAB and backslash escaped).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  answers = {}
end

local escapes = { ["\r"] = "\\r", ["\n"] = "\\n", ["\t"] = "\\t", ["\\"] = "\\\\" }

function response(status, headers, body)
  local key = status .. "\t" .. string.gsub(string.sub(body or "", 1, 200), "[\r\n\t\\]", escapes)
  answers[key] = (answers[key] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("answers")) do
      total[key] = (total[key] or 0) + count
    end
  end
  for key, count in pairs(total) do
    io.write(string.format("answer\t%d\t%s\n", count, key))
  end
end
