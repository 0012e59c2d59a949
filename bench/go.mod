module github.com/yieldio/yieldio/bench

go 1.26

require github.com/yieldio/yieldio v0.0.0

replace github.com/yieldio/yieldio => ../
