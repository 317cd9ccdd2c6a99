"""The columns `InputFiles` adds to each row it reads and `Predictor` takes off again."""

FILE = "_sigserve_file"  # the file's path under the input folder; "" for a single file
ROW = "_sigserve_row"  # the row's place in its file, counting data rows from 0
HEADER = "_sigserve_header"  # a CSV file's header line
RECORD = "_sigserve_record"  # one CSV record, as it is in the file
LINE = "_sigserve_line"  # one JSON line
