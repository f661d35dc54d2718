# bash completion for cove: source this file, or install it as
# /usr/share/bash-completion/completions/cove. Uses bash-completion's
# _init_completion when it is there.

_cove_machines() {
	"${COMP_WORDS[0]}" machine ls -q 2>/dev/null
}

_cove_images() {
	"${COMP_WORDS[0]}" image ls 2>/dev/null | awk 'NR > 1 && $2 != "<none>" { print $1 ":" $2 }'
}

# _cove_reply WORDS...: COMPREPLY from the words matching the current one.
_cove_reply() {
	local IFS=$'\n'
	COMPREPLY=($(compgen -W "$*" -- "$cur"))
}

_cove_files() {
	local IFS=$'\n'
	COMPREPLY=($(compgen -f -- "$cur"))
	compopt -o filenames 2>/dev/null
}

_cove_dirs() {
	local IFS=$'\n'
	COMPREPLY=($(compgen -d -- "$cur"))
	compopt -o filenames 2>/dev/null
}

_cove_machine() {
	local sub=$1 i
	case $prev in
	--format)
		case $sub in
		inspect) _cove_reply json yaml toml ;;
		*) _cove_reply table json yaml toml ;;
		esac
		return ;;
	--home-mount) _cove_reply rw ro none; return ;;
	--network) _cove_reply auto user bridge; return ;;
	--kernel | --env-file) _cove_files; return ;;
	--mount) _cove_dirs; return ;;
	-n | --name)
		case $sub in
		run | set) _cove_reply "$(_cove_machines)" ;;
		esac
		return ;;
	--cpus | --memory | --disk-size | -p | --publish | -t | --time | -u | --user | -e | --env | -w | --workdir | --tail)
		return ;;
	esac
	if [[ $cur == -* ]]; then
		case $sub in
		create) _cove_reply --name --cpus --memory --disk-size --home-mount --mount --network \
			--publish --kernel --set-default --no-boot --quiet --help ;;
		run) _cove_reply --name --detach --root --user --env --env-file --workdir --tty \
			--interactive --help ;;
		stop | restart) _cove_reply --time --help ;;
		ls | list) _cove_reply --format --quiet --help ;;
		inspect | stats) _cove_reply --format --help ;;
		set) _cove_reply --name --help ;;
		logs) _cove_reply --boot --follow --tail --help ;;
		rm | delete | remove) _cove_reply --force --help ;;
		*) _cove_reply --help ;;
		esac
		return
	fi
	case $sub in
	create)
		_cove_reply "$(_cove_images)" ;;
	start | stop | restart | inspect | logs | stats | set-default | rm | delete | remove)
		_cove_reply "$(_cove_machines)" ;;
	set)
		_cove_reply cpus= memory= disk-size= home-mount= network= kernel=
		compopt -o nospace 2>/dev/null ;;
	cp)
		if [[ $cur == *:* ]]; then
			return
		fi
		_cove_reply "$(_cove_machines | sed 's/$/:/')"
		local IFS=$'\n'
		COMPREPLY+=($(compgen -f -- "$cur"))
		compopt -o nospace -o filenames 2>/dev/null ;;
	esac
}

_cove() {
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion -n : || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi
	if ((cword == 1)); then
		_cove_reply image machine m --help --version
		return
	fi
	case ${words[1]} in
	machine | m)
		if ((cword == 2)); then
			_cove_reply create start stop restart run cp ls list inspect set set-default \
				logs stats rm delete remove --help
			return
		fi
		_cove_machine "${words[2]}" ;;
	image)
		if ((cword == 2)); then
			_cove_reply pull import ls list rm remove unpack --help
			return
		fi
		case ${words[2]} in
		rm | remove | unpack) [[ $cur != -* ]] && _cove_reply "$(_cove_images)" ;;
		ls | list) [[ $prev == --format ]] && _cove_reply table json ;;
		import) _cove_files ;;
		esac ;;
	esac
}

complete -F _cove cove
