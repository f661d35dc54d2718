# Echo one line of console input back.
read -r line
echo "GOT:$line"
