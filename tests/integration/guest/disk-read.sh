cat /persist.txt
